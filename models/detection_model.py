"""DetectionModel: a YAML-built network ending in a detection head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

import models.backbones
import models.heads
import models.layers  # noqa: F401  (registers layer types)
from models.builder import FLOW, LayerRecord, parse_model
from models.config import ConfigError, ModelConfig, load_model_config
from models.heads.base import DetectionHead
from models.reparam import reparameterize_model


class DetectionModel(nn.Module):
    """A detector built from a model config.

    `forward` returns the head's raw per-level maps in training mode and decoded boxes
    `(batch, anchors, 4 + [1] + nc)` in eval mode; `forward_raw` always returns the raw maps (validation loss).
    """

    def __init__(
        self,
        cfg: str | Path | dict[str, Any] | ModelConfig = "yolov5s.yaml",
        in_channels: int = 3,
        nc: int | None = None,
        scale: str | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        self.config = cfg if isinstance(cfg, ModelConfig) else load_model_config(cfg, scale=scale, nc=nc)
        if self.config.nc is None:
            raise ConfigError(f"{self.config.source}: missing 'nc' (number of classes); set it or pass nc=")
        built = parse_model(self.config, in_channels)
        if not built.records or not isinstance(built.layers[-1], DetectionHead):
            raise ConfigError(f"{self.config.source}: the last layer must be a detection head (Detect)")
        self.model = built.layers
        self.records: list[LayerRecord] = built.records
        self.saved_slots = built.saved_slots
        self.in_channels = in_channels
        self.names: dict[int, str] = {i: f"class{i}" for i in range(self.config.nc)}
        # Options of the run that trained these weights (filled from a checkpoint): inference defaults to its imgsz.
        self.train_args: dict[str, Any] = {}
        self.is_fused = False
        if fused:
            self.fuse()

    @property
    def yaml(self) -> dict[str, Any]:
        """The config mapping this model was built from (what checkpoints store)."""
        return self.config.raw

    @property
    def head(self) -> DetectionHead:
        return self.model[-1]  # type: ignore[return-value]

    @property
    def nc(self) -> int:
        return self.head.nc

    @property
    def stride(self) -> torch.Tensor:
        """Strides of the head's input levels, known at build time."""
        return self.head.stride

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run every layer but the head and return the head's inputs."""
        saved: dict[int, torch.Tensor] = {}
        for module, record in zip(self.model[:-1], self.records[:-1]):
            x = module(self._gather(record, x, saved))
            if record.multi_output:
                for slot, y in zip(record.slots, x):
                    if slot in self.saved_slots:
                        saved[slot] = y
                x = x[-1]  # the deepest map continues the flow
            elif record.first_slot in self.saved_slots:
                saved[record.first_slot] = x
        return self._gather(self.records[-1], x, saved)

    @staticmethod
    def _gather(record: LayerRecord, x: torch.Tensor, saved: dict[int, torch.Tensor]) -> Any:
        inputs = [x if s == FLOW else saved[s] for s in record.sources]
        return inputs if record.from_list else inputs[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.head(self.features(x))

    def forward_raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The head's raw maps whatever the mode (what the loss consumes)."""
        return self.head.predict_raw(self.features(x))

    def fuse(self) -> DetectionModel:
        """Fold BatchNorms and re-parameterize multi-branch blocks in place; idempotent."""
        reparameterize_model(self)
        self.is_fused = True
        return self
