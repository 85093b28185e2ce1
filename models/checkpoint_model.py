"""The model a checkpoint describes, rebuilt from its own config (utils/checkpoint.py reads and writes the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.detection_model import DetectionModel
from utils.checkpoint import load_checkpoint


def model_from_checkpoint(
    source: str | Path | dict[str, Any], use_ema: bool = True, map_location: str | torch.device = "cpu"
) -> DetectionModel:
    """Rebuild the model a checkpoint describes (fused form if it was saved fused) and load its weights.

    The EMA weights are preferred when present, as they are what validation measured.
    """
    ckpt = source if isinstance(source, dict) else load_checkpoint(source, map_location)
    model = DetectionModel(ckpt["model_yaml"], in_channels=ckpt.get("in_channels", 3), fused=ckpt.get("fused", False))
    weights = ckpt.get("ema") if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(weights, strict=True)
    model.names = {int(k): v for k, v in ckpt.get("names", model.names).items()}
    model.train_args = dict(ckpt.get("train_args") or {})
    return model.float()
