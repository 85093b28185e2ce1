"""What every detection head shares: raw maps in training, decoded boxes in eval, strides known at build."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.layer_spec import FeatureSpec, LayerBuild, LayerContext, instantiate
from utils.values import is_int


class DetectionHead(nn.Module):
    """Base of detection heads.

    Subclasses implement `predict_raw(features) -> list[Tensor]` (the per-level maps the loss consumes) and
    `decode(raw) -> Tensor` of shape (batch, anchors, 4 + [1 objectness] + nc), boxes as xywh in pixels and
    scores as probabilities. `has_objectness` says whether column 4 is an objectness score.
    """

    has_objectness: bool = False
    nc: int
    stride: torch.Tensor

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor] | torch.Tensor:
        raw = self.predict_raw(features)
        return raw if self.training else self.decode(raw)

    def predict_raw(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def from_config(cls, ctx: LayerContext) -> LayerBuild:
        """YAML args are the head's own ([nc] or [nc, anchors]); input channels and strides are appended."""
        if not ctx.from_list:
            raise ValueError(f"{cls.__name__} needs a list of input layers, e.g. [[17, 20, 23], 1, Detect, [nc]]")
        strides = [spec.stride for spec in ctx.inputs]
        if any(s is None for s in strides):
            raise ValueError(f"{cls.__name__}: the stride of an input is unknown {ctx.inputs}")
        nc = ctx.args[0] if ctx.args else None
        if not is_int(nc) or nc < 1:
            raise ValueError(f"{cls.__name__}: nc must be a positive int, got {nc!r}")
        args = [*ctx.args, [spec.channels for spec in ctx.inputs], strides]
        module = instantiate(cls, args)
        return LayerBuild(module, [FeatureSpec(module.no, None)], args)
