"""Training end to end on tiny synthetic data: it learns, resumes exactly, runs under DDP, writes its files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from engine.train_options import TrainOptions
from engine.trainer import Trainer, TrainingError, train
from tests.synthetic_data import make_synthetic_dataset
from utils.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent

# No augmentation and no warm-up: the overfit test checks that the model, loss and loop learn, nothing else.
STILL_HYP = {
    "lr0": 0.01, "lrf": 0.1, "momentum": 0.9, "weight_decay": 0.0, "warmup_epochs": 0.0, "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.0, "box": 7.5, "cls": 0.5, "dfl": 1.5, "obj": 1.0, "cls_pw": 1.0, "obj_pw": 1.0,
    "anchor_t": 4.0, "fl_gamma": 0.0, "label_smoothing": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0,
    "degrees": 0.0, "translate": 0.0, "scale": 0.0, "shear": 0.0, "perspective": 0.0, "flipud": 0.0,
    "fliplr": 0.0, "mosaic": 0.0, "mixup": 0.0,
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 96 px images, two classes; validation is the training set (for the overfit check)."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("tiny"), n_train=4, n_val=4, imgsz=96, nc=2, val_is_train=True)


@pytest.fixture(scope="module")
def still_hyp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hyp") / "still.yaml"
    path.write_text(yaml.safe_dump(STILL_HYP))
    return path


def options(data: Path, project: Path, **overrides) -> TrainOptions:
    base = dict(
        cfg="yolo11n.yaml", data=str(data), imgsz=96, batch_size=4, nbs=4, workers=0, project=str(project),
        min_warmup_iters=0, cache="ram", seed=0,
    )
    return TrainOptions(**{**base, **overrides})


def test_overfits_tiny_data(tiny_data: Path, still_hyp: Path, tmp_path: Path) -> None:
    # bn_momentum 0.3: with ~30 updates the default 0.03 leaves running statistics far behind the weights
    run = train(options(tiny_data, tmp_path, hyp=str(still_hyp), epochs=30, optimizer="AdamW", noval=True,
                        noplots=True, bn_momentum=0.3))
    metrics = load_checkpoint(run / "weights" / "best.pt")["metrics"]
    assert metrics["map50"] >= 0.9, metrics


class _Interrupt(Exception):
    pass


def _interrupt_after_first_epoch(trainer: Trainer) -> None:
    if trainer.epoch == 0:
        raise _Interrupt


def test_resume_is_exact_and_run_files_exist(tiny_data: Path, tmp_path: Path) -> None:
    common = dict(cfg="yolov5n.yaml", epochs=2, batch_size=2, nbs=2, close_mosaic=1)
    straight = train(options(tiny_data, tmp_path, name="straight", **common))

    with pytest.raises(_Interrupt):
        train(options(tiny_data, tmp_path, name="interrupted", noplots=True, **common),
              callbacks={"on_epoch_end": [_interrupt_after_first_epoch]})
    last = tmp_path / "interrupted" / "weights" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 0
    resumed = train(TrainOptions(resume=str(last), project=str(tmp_path)))
    assert resumed == tmp_path / "interrupted"

    a = load_checkpoint(straight / "weights" / "last.pt")["model"]
    b = load_checkpoint(resumed / "weights" / "last.pt")["model"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    rows = (resumed / "results.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    for name in ("results.csv", "results.png", "labels.jpg", "train_batch0.jpg", "train_batch1.jpg", "args.yaml",
                 "hyp.yaml", "weights/best.pt", "weights/last.pt", "confusion_matrix.png", "PR_curve.png",
                 "val_batch0_labels.jpg", "val_batch0_pred.jpg"):
        assert (straight / name).is_file(), name
    assert load_checkpoint(straight / "weights" / "best.pt").get("optimizer") is None  # finished runs are stripped


def test_early_stopping(tiny_data: Path, tmp_path: Path) -> None:
    # with --noval fitness stays 0 after epoch 1, so patience 1 stops the run after its second epoch
    trainer = Trainer(options(tiny_data, tmp_path, cfg="yolov5n.yaml", epochs=6, patience=1, noval=True, noplots=True))
    trainer.train()
    assert trainer.epoch == 1


def test_resume_without_runs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no .*last.pt to resume"):
        Trainer(TrainOptions(resume=True, project=str(tmp_path / "nothing")))


def test_ddp_two_cpu_processes(tiny_data: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "train.py", "--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--imgsz", "96", "--batch-size", "4",
        "--epochs", "1", "--workers", "0", "--device", "cpu", "--project", str(tmp_path), "--noplots",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = tmp_path / "exp"
    assert (run / "weights" / "last.pt").is_file()
    assert len((run / "results.csv").read_text().strip().splitlines()) == 2  # header + one epoch, rank 0 only
    assert "python val.py --weights" in result.stdout
