"""The model a checkpoint describes, rebuilt from its own config (utils/checkpoint.py reads and writes the file).

A YOLOv5 or ultralytics checkpoint is accepted wherever weights are read (`read_weights`): weights-only loading
refuses it because it pickles their classes, and it is then imported through the restricted unpickler
(models/foreign_import.py), which runs nothing from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.detection_model import DetectionModel
from models.foreign_import import import_foreign_checkpoint
from utils.checkpoint import CheckpointError, PickledObjectsError, load_checkpoint
from utils.restricted_unpickler import ForeignFileError


def read_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint dict of this project: read as one (`torch.load(weights_only=True)`), or, for a file that
    pickles objects, imported from YOLOv5 / ultralytics into that format."""
    try:
        return load_checkpoint(path, map_location)
    except PickledObjectsError as refused:
        try:
            return import_foreign_checkpoint(path)
        except ForeignFileError:  # not a torch zip file (legacy format, plain pickle): the first reason stands
            raise CheckpointError(str(refused)) from None


def model_from_checkpoint(
    source: str | Path | dict[str, Any], use_ema: bool = True, map_location: str | torch.device = "cpu"
) -> DetectionModel:
    """Rebuild the model a checkpoint describes (fused form if it was saved fused) and load its weights.

    The EMA weights are preferred when present, as they are what validation measured.
    """
    ckpt = source if isinstance(source, dict) else read_weights(source, map_location)
    model = DetectionModel(ckpt["model_yaml"], in_channels=ckpt.get("in_channels", 3), fused=ckpt.get("fused", False))
    weights = ckpt.get("ema") if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(weights, strict=True)
    model.names = {int(k): v for k, v in ckpt.get("names", model.names).items()}
    model.train_args = dict(ckpt.get("train_args") or {})
    return model.float()
