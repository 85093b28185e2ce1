"""What every detection head shares: raw maps in training, decoded boxes in eval, strides known at build."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn as nn

from models.layer_spec import FeatureSpec, LayerBuild, LayerContext, instantiate
from utils.values import is_int


class DetectionHead(nn.Module):
    """Base of detection heads.

    Subclasses implement `predict_raw(features) -> list[Tensor]` (the per-level maps the loss consumes) and
    `decode(raw) -> Tensor` of shape (batch, anchors, 4 + [1 objectness] + nc), boxes as xywh in pixels and
    scores as probabilities. `has_objectness` says whether column 4 is an objectness score.

    A head also owns its training recipe, so the engine asks it instead of testing its type: `family` (the name
    checkpoints and exports record; a subclass that declares one is registered in `HEAD_FAMILIES`), `loss_name`
    (the loss registered in losses/ it trains with by default; the loss names its hyperparameter file),
    `val_iou` (the NMS IoU validation uses by default), `prepare_training()` (a step before the first epoch) and
    `prediction_convs()` (the last convs before the decode, which int8 export keeps the decode behind in float).
    """

    has_objectness: ClassVar[bool] = False
    family: ClassVar[str] = ""
    loss_name: ClassVar[str] = ""
    val_iou: ClassVar[float] = 0.7
    nc: int
    stride: torch.Tensor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("family")
        if family:
            known = HEAD_FAMILIES.get(family)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ValueError(f"head family {family!r} is taken by {known.__name__}; {cls.__name__} needs its own")
            HEAD_FAMILIES[family] = cls

    def prepare_training(self, dataset: Any, hyp: Mapping[str, Any], imgsz: int, seed: int) -> None:
        """Adapt to the training data before the first epoch (nothing by default).

        `dataset` has `labels` (per image an (n, 5) array: class, x, y, w, h normalised) and `shapes` (per image
        its original (width, height)).
        """

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor] | torch.Tensor:
        raw = self.predict_raw(features)
        return raw if self.training else self.decode(raw)

    def predict_raw(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def prediction_convs(self) -> list[nn.Conv2d]:
        """The convs whose outputs are the raw maps: everything computed from them is the decode (grids,
        sigmoids, DFL, strides), which int8 export leaves in floating point."""
        raise NotImplementedError(f"{type(self).__name__} does not name its prediction convs")

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


HEAD_FAMILIES: dict[str, type[DetectionHead]] = {}


def head_family(name: str) -> type[DetectionHead]:
    """The head class recorded under `name` in checkpoints and exports; ValueError naming the known ones."""
    if name not in HEAD_FAMILIES:
        raise ValueError(f"unknown head family {name!r} (expected one of {', '.join(sorted(HEAD_FAMILIES))})")
    return HEAD_FAMILIES[name]
