"""Helpers shared by tests: configs to iterate over, a small config writer, the loss gains the loss tests use,
hyperparameters for tiny training runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn
import yaml

from engine.train_options import TrainOptions
from models.config import available_configs, read_yaml
from models.layer_spec import FeatureSpec, LayerContext, Scaling

# The loss gains of the references' scratch hyperparameters, without augmentation keys: what the loss tests feed.
ANCHOR_HYP = {
    "box": 0.05,
    "cls": 0.5,
    "cls_pw": 1.0,
    "obj": 1.0,
    "obj_pw": 1.0,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "label_smoothing": 0.0,
}
DFL_HYP = {"box": 7.5, "cls": 0.5, "dfl": 1.5, "label_smoothing": 0.0}
ALIGNED_HYP = {"box": 7.5, "obj": 1.0, "cls": 0.5, "label_smoothing": 0.0}  # the anchor head's default loss

# Training hyperparameters for runs that must learn fast and reproducibly on a few synthetic images.
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


def config_cases(scales: tuple[str, ...] = ("n",)) -> list[tuple[str, str | None]]:
    """(config path, scale) for every YAML under cfg/; scaled configs at each of `scales` they define."""
    cases = []
    for path in available_configs():
        raw = read_yaml(path)
        if raw.get("scales"):
            cases += [(str(path), s) for s in scales if s in raw["scales"]]
        else:
            cases.append((str(path), None))
    return cases


def case_id(case: tuple[str, str | None]) -> str:
    path, scale = case
    return Path(path).stem + (f"-{scale}" if scale else "")


def write_config(directory: Path, name: str, config: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build_stage(cls: type, in_channels: int, *args: Any) -> nn.Module:
    """A multi-output stage built as a YAML row `[-1, 1, cls, args]` builds it: through its build rule, which
    also loads the checkpoint its `weights` argument names (the constructor only checks the path)."""
    ctx = LayerContext(0, cls.__name__, [FeatureSpec(in_channels, 1.0)], False, 1, list(args), Scaling())
    return cls.from_config(ctx).module


class Interrupted(Exception):
    """Raised by interrupt_after_first_epoch: a run stopped on purpose, to be resumed by the test."""


def interrupt_after_first_epoch(trainer) -> None:
    """An `after_epoch` callback that stops a training run after its first epoch."""
    if trainer.epoch == 0:
        raise Interrupted


PAYLOAD_MARKER = "PAYLOAD_RAN"  # the file a payload creates when some loader lets it run


class SystemPayload:
    """Unpickling this runs `touch <marker>`: a test fails if any loader lets it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def tiny_train_options(data: str | Path, project: str | Path, **overrides: Any) -> TrainOptions:
    """Options of a tiny training run: yolo11n at 64 px, batches of 2 with one optimiser step each, no loader
    workers, images cached in memory, no plots, seed 0; `overrides` replace any of them."""
    base: dict[str, Any] = dict(
        cfg="yolo11n.yaml",
        data=str(data),
        imgsz=64,
        batch_size=2,
        nbs=2,
        workers=0,
        project=str(project),
        cache="ram",
        noplots=True,
        seed=0,
    )
    return TrainOptions(**{**base, **overrides})
