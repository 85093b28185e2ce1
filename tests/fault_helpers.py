"""Shared by the fault-injection tests (tests/test_fault_*.py): the smallest training run that learns something
in 3 epochs (so best.pt moves during the run), its command line, and checks of a run directory's files."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import yaml

from tests.helpers import STILL_HYP
from tests.synthetic_data import make_synthetic_dataset


def make_fault_data(root: Path) -> tuple[Path, Path]:
    """Four 64 px images (validated on themselves) and a hyperparameter file without augmentation or warm-up."""
    data = make_synthetic_dataset(root / "data", n_train=4, n_val=4, imgsz=64, nc=2, val_is_train=True)
    hyp = root / "still.yaml"
    hyp.write_text(yaml.safe_dump(STILL_HYP))
    return data, hyp


def train_argv(data: Path, hyp: Path, project: Path, name: str, epochs: int = 3, *extra: str) -> list[str]:
    """train.py arguments of a run of `epochs` 2-batch epochs of yolov5n at 64 px on CPU; with AdamW and seed 3 its
    fitness improves in epochs 0 and 1 and not in 2 (measured: 0.0010, 0.0015, 0.0009), so best.pt and last.pt part
    ways."""
    argv = ["--cfg", "yolov5n.yaml", "--data", str(data), "--hyp", str(hyp), "--imgsz", "64"]
    argv += ["--epochs", str(epochs), "--batch-size", "2", "--nbs", "2", "--workers", "0", "--device", "cpu"]
    argv += ["--optimizer", "AdamW", "--bn-momentum", "0.3", "--cache", "ram", "--noplots", "--seed", "3"]
    return [*argv, "--project", str(project), "--name", name, *extra]


def csv_epochs(run: Path) -> list[int]:
    """The epoch column of a run's results.csv (empty if there is none)."""
    path = run / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(row[0]) for row in list(csv.reader(f))[1:]]


def temp_files(run: Path) -> list[Path]:
    """Temp files of interrupted atomic writes in the run and weights directories."""
    return sorted([*run.glob(".*.tmp"), *(run / "weights").glob(".*.tmp")])


def all_finite(ckpt: dict) -> bool:
    """Whether every floating tensor of a checkpoint's model (and EMA, when kept) is finite."""
    tensors = [*ckpt["model"].values(), *(ckpt.get("ema") or {}).values()]
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def differing_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names of tensors that differ between two state dicts (all of them if the keys differ)."""
    if a.keys() != b.keys():
        return sorted(set(a) ^ set(b))
    return [k for k in a if not torch.equal(a[k], b[k])]
