"""What a training run needs before its first step, apart from the trainer itself and its hyperparameters
(engine/hyperparameters.py): the resumed checkpoint, transferred weights, frozen layers, BatchNorm momentum and
the data loader's worker count."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml

from engine.hyperparameters import Hyperparameters
from engine.train_options import TrainOptions
from models.checkpoint_model import read_weights
from models.detection_model import DetectionModel
from utils.atomic_write import atomic_write
from utils.checkpoint import CheckpointError, load_checkpoint
from utils.errors import UserError
from utils.files import newest_weights
from utils.logging import LOGGER


class TrainingError(UserError, ValueError):
    """A training run that cannot start or continue (bad options, nothing to resume, ...)."""


def load_resume(options: TrainOptions) -> tuple[TrainOptions, dict[str, Any]]:
    """The options saved in the checkpoint to resume (device and workers as given now), and the checkpoint."""
    if options.resume is True:
        path = newest_weights(options.project, "*/weights/last.pt")
        if path is None:
            raise TrainingError(f"--resume: no {options.project}/*/weights/last.pt to resume; start a run first")
    else:
        path = Path(str(options.resume))
    ckpt = load_named_checkpoint(path, "--resume")
    if "train_args" not in ckpt or ckpt.get("epoch") is None:
        raise TrainingError(f"--resume {path}: this checkpoint has no training state (not a last.pt of a run)")
    restored = TrainOptions.from_dict(ckpt["train_args"])
    if "loss" not in ckpt["train_args"] and "anchor_t" in (ckpt.get("hyp") or {}):
        restored.loss = "AnchorLoss"  # a run from before --loss existed: YOLOv5's loss was then the only one
    if ckpt.get("wrapped_up", ckpt.get("optimizer") is None):  # older checkpoints: stripped means finished
        raise TrainingError(f"--resume {path}: this run is finished (trained and wrapped up); nothing to resume")
    restored.resume = str(path)
    restored.device, restored.workers = options.device or restored.device, options.workers
    ckpt["_save_dir"] = str(path.parent.parent)
    if checkpoint_training_done(ckpt, restored.epochs):
        LOGGER.info(f"Resuming {path}: every epoch is trained; finishing the wrap-up (final validation, plots, ...)")
    else:
        LOGGER.info(f"Resuming {path} from epoch {ckpt['epoch'] + 2}/{restored.epochs}")
    return restored, ckpt


def checkpoint_training_done(ckpt: dict[str, Any], epochs: int | None = None) -> bool:
    """Whether a run's checkpoint has no epoch left to train (the last one, or stopped early): resuming it only
    finishes the wrap-up. Checkpoints older than the `training_done` key count their epochs."""
    if "training_done" in ckpt:
        return bool(ckpt["training_done"])
    if epochs is None:
        epochs = TrainOptions.from_dict(ckpt["train_args"]).epochs
    return int(ckpt["epoch"]) + 1 >= epochs


def load_named_checkpoint(path: str | Path, argument: str) -> dict[str, Any]:
    """load_checkpoint, with the command-line argument that named the file in its error."""
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise TrainingError(f"{argument} {e}") from None


def write_run_files(save_dir: Path, options: TrainOptions, hyp: Hyperparameters) -> None:
    """args.yaml and hyp.yaml: what the run was started with."""
    atomic_write(save_dir / "args.yaml", yaml.safe_dump(options.to_dict(), sort_keys=False))
    atomic_write(save_dir / "hyp.yaml", yaml.safe_dump(hyp.to_dict(), sort_keys=False))


def read_named_weights(path: str | Path, argument: str) -> dict[str, Any]:
    """read_weights (ours, or a YOLOv5 / ultralytics checkpoint imported), with the argument that named the file
    in its error."""
    try:
        return read_weights(path)
    except CheckpointError as e:
        raise TrainingError(f"{argument} {e}") from None


def transfer_weights(model: nn.Module, ckpt: dict[str, Any], path: str | Path) -> None:
    """--weights: load every tensor of the checkpoint (EMA preferred) whose name and shape match; the rest (a head
    for another class count, say) keeps its fresh initialisation, as in YOLOv5 and ultralytics. Logs both."""
    source = ckpt.get("ema") or ckpt["model"]
    target = model.state_dict()
    matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not matched:
        raise TrainingError(f"--weights {path}: no tensor matches this model")
    model.load_state_dict(matched, strict=False)
    fresh = [k for k in target if k not in matched]
    detail = f"; initialised afresh (name or shape differs): {_listed(fresh)}" if fresh else ""
    LOGGER.info(f"Transferred {len(matched)}/{len(target)} tensors from {path}{detail}")


def _listed(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def freeze_layers(model: DetectionModel, spec: str | None) -> None:
    """--freeze backbone (its YAML rows) or N (every layer whose first slot is below N)."""
    if not spec:
        return
    if spec == "backbone":
        frozen_rows = range(len(model.yaml.get("backbone", [])))
    else:
        try:
            limit = int(spec)
        except ValueError:
            raise TrainingError(f"--freeze {spec!r}: use 'backbone' or a layer count") from None
        frozen_rows = [i for i, r in enumerate(model.records) if r.first_slot < limit]
    for row in frozen_rows:
        model.model[row].requires_grad_(False)
    LOGGER.info(f"Frozen {len(list(frozen_rows))} layers ({spec})")


def set_batchnorm_momentum(model: nn.Module, momentum: float) -> None:
    """Running statistics follow the weights faster with a higher momentum. The references' 0.03 suits
    thousands of iterations; a run of a few hundred ends with statistics that lag its weights."""
    if not 0 < momentum <= 1:
        raise TrainingError(f"--bn-momentum {momentum}: must be in (0, 1]")
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def resolve_workers(requested: int | None, device: torch.device) -> int:
    """Data loader workers: as requested, else 0 on CPU and min(8, cores) on CUDA.

    Workers persist across epochs (dataio/loader.py), but on CPU they share the cores with the training step:
    measured on the trees data with 2 shared cores (benchmarks/results/loader_workers.md), training epochs were no
    faster with 2 persistent workers than with none, loading cached images in-process taking ~4% of an epoch.
    """
    if requested is not None:
        if requested < 0:
            raise TrainingError(f"--workers {requested}: must be >= 0")
        return requested
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
