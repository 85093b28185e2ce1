"""Shared test setup: the repo root on sys.path, and small helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# Tiny synthetic data and one overfitted model, shared by the training, validation and export tests:
# training is the slowest thing the suite does, so it happens once per session.
STILL_HYP = {
    "lr0": 0.01,
    "lrf": 0.1,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "warmup_epochs": 0.0,
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.0,
    "box": 7.5,
    "cls": 0.5,
    "dfl": 1.5,
    "obj": 1.0,
    "cls_pw": 1.0,
    "obj_pw": 1.0,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "label_smoothing": 0.0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "degrees": 0.0,
    "translate": 0.0,
    "scale": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
    "flipud": 0.0,
    "fliplr": 0.0,
    "mosaic": 0.0,
    "mixup": 0.0,
}  # no augmentation, no warm-up: the overfit run checks that model, loss and loop learn, nothing else


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 96 px images, two classes; validation is the training set."""
    from tests.synthetic_data import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path_factory.mktemp("tiny"), n_train=4, n_val=4, imgsz=96, nc=2, val_is_train=True
    )


@pytest.fixture(scope="session")
def overfit_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A yolo11n trained 30 epochs on `tiny_data` until it reproduces its labels; returns the run directory."""
    import yaml

    from engine.train_options import TrainOptions
    from engine.trainer import train

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
        bn_momentum=0.3,
        min_warmup_iters=0,
        cache="ram",
        project=str(root),
        seed=0,
    )
    return train(options)
