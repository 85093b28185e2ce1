"""Shared test setup: the repo root on sys.path, and small helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the project's packages, whichever directory pytest is started from
    sys.path.insert(0, str(ROOT))

from engine.train_options import TrainOptions  # noqa: E402
from engine.trainer import train  # noqa: E402
from tests.helpers import STILL_HYP  # noqa: E402
from tests.synthetic_data import make_synthetic_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Tiny synthetic data and one overfitted model, shared by the training, validation and export tests:
# training is the slowest thing the suite does, so it happens once per session.


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 96 px images, two classes; validation is the training set."""
    return make_synthetic_dataset(
        tmp_path_factory.mktemp("tiny"), n_train=4, n_val=4, imgsz=96, nc=2, val_is_train=True
    )


@pytest.fixture(scope="session")
def overfit_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolo11n trained 30 epochs on `tiny_data` until it reproduces its labels; returns the run directory."""
    root = tmp_path_factory.mktemp("overfit")
    hyp = root / "still.yaml"
    hyp.write_text(yaml.safe_dump(STILL_HYP))
    # bn_momentum 0.3: with ~30 updates the default 0.03 leaves running statistics far behind the weights
    options = TrainOptions(
        cfg="yolo11n.yaml",
        data=str(tiny_data),
        hyp=str(hyp),
        imgsz=96,
        batch_size=4,
        nbs=4,
        workers=0,
        epochs=30,
        optimizer="AdamW",
        noval=True,
        noplots=True,
        nosave=True,  # checkpoints once, at the end: writing one every epoch took 60 % of this run
        bn_momentum=0.3,
        min_warmup_iters=0,
        cache="ram",
        project=str(root),
        seed=0,
    )
    return train(options)
