"""Detection losses, chosen by the head (`loss_name`): for the anchor-based head a task-aligned loss or YOLOv5's
own, for the anchor-free head the YOLOv8/11 DFL loss; each registered by class name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn as nn

from losses.aligned_anchor_loss import AlignedAnchorLoss, AlignedAnchorLossHyp
from losses.anchor_loss import AnchorLoss, AnchorLossHyp
from losses.anchor_targets import LevelTargets, build_anchor_targets
from losses.assigner import Assignment, TaskAlignedAssigner
from losses.base import LOSSES, DetectionLoss, LossHyp, register_loss
from losses.dfl_loss import DFLLoss, DFLLossHyp, distribution_focal_loss
from models.heads.base import DetectionHead


def loss_class(model: nn.Module) -> type[DetectionLoss]:
    """The registered loss class `model`'s head names (`loss_name`); `model` may be wrapped (`.module`)."""
    model = getattr(model, "module", model)
    head = model.head if hasattr(model, "head") else model
    if not isinstance(head, DetectionHead):
        raise TypeError(f"a loss needs a model with a DetectionHead, got {type(head).__name__}")
    if head.loss_name not in LOSSES:
        raise TypeError(
            f"{type(head).__name__}.loss_name {head.loss_name!r} is not a registered loss "
            f"(known: {', '.join(sorted(LOSSES))}); decorate its class with losses.register_loss"
        )
    return LOSSES[head.loss_name]


def build_loss(model: nn.Module, hyp: Mapping[str, Any], imgsz: int | None = None) -> DetectionLoss:
    """The loss for `model`'s head with gains from `hyp` (a data/hyps/*.yaml mapping, unscaled).

    The anchor-based loss scales its gains by level count, class count and image size itself (pass the
    hyperparameters as read, never pre-scaled); `imgsz` is the nominal training size for the objectness
    scaling (default: each batch's own size). `model` may be wrapped (`.module`, as DDP/EMA do).
    """
    model = getattr(model, "module", model)
    return loss_class(model)(model.head if hasattr(model, "head") else model, hyp, imgsz=imgsz)


__all__ = [
    "AlignedAnchorLoss",
    "AlignedAnchorLossHyp",
    "AnchorLoss",
    "AnchorLossHyp",
    "Assignment",
    "DFLLoss",
    "DFLLossHyp",
    "DetectionLoss",
    "LOSSES",
    "LossHyp",
    "LevelTargets",
    "TaskAlignedAssigner",
    "build_anchor_targets",
    "build_loss",
    "distribution_focal_loss",
    "loss_class",
    "register_loss",
]
