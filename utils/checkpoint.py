"""Checkpoint I/O: weights as tensors plus the model YAML, written atomically, read with weights_only=True.

A checkpoint is a plain dict (see `save_checkpoint`), so it loads without unpickling any code and rebuilds
the model from its own config (`models.checkpoint_model.model_from_checkpoint`): no class of ours needs to
exist under the same import path.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from utils.atomic_write import atomic_write
from utils.errors import UserError
from utils.torch_utils import unwrap_model

CHECKPOINT_FORMAT = "yolo-checkpoint/1"


class CheckpointError(UserError, ValueError):
    """A file that is not a readable checkpoint of this project."""


class PickledObjectsError(CheckpointError):
    """A torch file that pickles Python objects (another framework's checkpoint?), refused by weights-only
    loading; models/checkpoint_model.read_weights then tries it as a YOLOv5 / ultralytics checkpoint."""


# What a file with one of these suffixes is: a model exported from a checkpoint, never a checkpoint itself.
EXPORT_KINDS = {
    ".onnx": "an ONNX export",
    ".torchscript": "a TorchScript export",
    ".xml": "an OpenVINO export",
    ".bin": "an OpenVINO export's weights",
    ".engine": "a TensorRT engine",
    ".tflite": "a TFLite export",
}


def export_kind(path: str | Path) -> str | None:
    """'an ONNX export' etc. when `path`'s suffix names an exported model (or an OpenVINO folder), else None."""
    path = Path(path)
    if path.name.endswith("_openvino_model"):
        return "an OpenVINO export"
    return EXPORT_KINDS.get(path.suffix.lower())


def _plain(value: Any) -> Any:
    """Make options safe for weights_only loading: paths to str, tuples to lists, recursively."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, int) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    return str(value)


def model_state(model: nn.Module) -> dict[str, Any]:
    """What identifies a model: its config, input channels, fused flag, class names and weights."""
    model = unwrap_model(model)
    return {
        "model_yaml": _plain(model.yaml),
        "in_channels": int(model.in_channels),
        "fused": bool(model.is_fused),
        "names": {int(k): str(v) for k, v in model.names.items()},
        "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()},
    }


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write a checkpoint atomically (temp file, then rename) so an interrupted save never corrupts `path`; a
    failed write raises StorageError and leaves the previous file as it was.

    `extra` holds training state: ema, ema_updates, optimizer, epoch, best_fitness, train_args, ...
    """
    return atomic_write(path, checkpoint_bytes(model, **extra))


def checkpoint_dict(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The checkpoint `save_checkpoint` writes, as a dict in memory (the model's tensors are copies)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **model_state(model),
        **{k: _plain(v) for k, v in extra.items()},
    }


def checkpoint_bytes(model: nn.Module, **extra: Any) -> memoryview:
    """The serialised checkpoint `save_checkpoint` writes, for writing one epoch's state to several files
    (best.pt, last.pt, epochN.pt) with one serialisation: pickling ~1,000 tensors costs more than a tiny step."""
    return serialise_checkpoint(checkpoint_dict(model, **extra))


def write_checkpoint_file(path: str | Path, ckpt: dict[str, Any]) -> Path:
    """Serialise to memory, then `atomic_write`: readers never see a half-written checkpoint, and a full disk or
    read-only storage raises StorageError naming `path` (torch.save writing to the file itself would fail with
    its own "unexpected pos" RuntimeError instead of the OSError behind it)."""
    return atomic_write(path, serialise_checkpoint(ckpt))


def serialise_checkpoint(ckpt: dict[str, Any]) -> memoryview:
    """A checkpoint dict as the bytes of its .pt file."""
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    return buffer.getbuffer()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict with `torch.load(weights_only=True)`; a foreign or corrupt file raises CheckpointError."""
    path = Path(path)
    kind = export_kind(path)
    if kind is not None:
        raise CheckpointError(f"{path} is {kind}, not a .pt checkpoint of this project")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "looks like a TorchScript archive": the error below says it
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        error = PickledObjectsError if _refused_global(e) else CheckpointError
        raise error(f"{path} is not a checkpoint of this project: {_unreadable_reason(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this project (expected format {CHECKPOINT_FORMAT})")
    return ckpt


def _refused_global(error: Exception) -> str | None:
    """The global a weights-only load refused (the file pickles objects of that class or function), if that was why."""
    # torch words it "Unsupported global: GLOBAL x.y", or "unsupported GLOBAL x.y whose module x is blocked"
    found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(error), re.IGNORECASE)
    return found.group(1) if found else None


def _unreadable_reason(error: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in one line. torch's own message runs to several
    lines and advises weights_only=False, which would let the file run code: it is never passed on."""
    text = str(error)
    if "TorchScript archive" in text:
        return "it is a TorchScript archive (an export, not a checkpoint)"
    refused = _refused_global(error)
    if refused:
        return (
            f"it pickles Python objects ({refused}), which weights-only loading refuses because "
            "unpickling can run code (a checkpoint of another framework, e.g. YOLOv5 or ultralytics?)"
        )
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text:
        return "torch cannot read it as a weights-only file (not written by torch.save?)"
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    detail = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return f"torch cannot read it: not written by torch.save, or truncated ({detail})"
