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
from utils.errors import UserError


class UnknownLossError(UserError, ValueError):
    """A loss name (--loss) that is not registered or does not train the model's head."""


def _head(model: nn.Module) -> DetectionHead:
    model = getattr(model, "module", model)
    head = model.head if hasattr(model, "head") else model
    if not isinstance(head, DetectionHead):
        raise TypeError(f"a loss needs a model with a DetectionHead, got {type(head).__name__}")
    return head


def losses_for(head: DetectionHead) -> list[str]:
    """Names of the registered losses that can train `head`, its own first."""
    fitting = sorted(name for name, cls in LOSSES.items() if isinstance(head, cls.head_type))
    return sorted(fitting, key=lambda name: name != head.loss_name)


def loss_class(model: nn.Module, name: str | None = None) -> type[DetectionLoss]:
    """The registered loss class `name`, by default the one `model`'s head names (`loss_name`); `model` may be
    wrapped (`.module`). A name that is unknown or trains another head type raises UnknownLossError."""
    head = _head(model)
    if name is None:
        if head.loss_name not in LOSSES:
            raise TypeError(
                f"{type(head).__name__}.loss_name {head.loss_name!r} is not a registered loss "
                f"(known: {', '.join(sorted(LOSSES))}); decorate its class with losses.register_loss"
            )
        return LOSSES[head.loss_name]
    cls = LOSSES.get(name)
    if cls is None or not isinstance(head, cls.head_type):
        why = "unknown loss" if cls is None else f"it trains {cls.head_type.__name__} heads, not {type(head).__name__}"
        raise UnknownLossError(f"--loss {name}: {why}; losses for this model: {', '.join(losses_for(head))}")
    return cls


def build_loss(
    model: nn.Module, hyp: Mapping[str, Any], imgsz: int | None = None, name: str | None = None
) -> DetectionLoss:
    """The loss `name` (default: the one `model`'s head names) with gains from `hyp` (a data/hyps/*.yaml
    mapping, unscaled).

    YOLOv5's loss (AnchorLoss) scales its gains by level count, class count and image size itself (pass the
    hyperparameters as read, never pre-scaled); `imgsz` is the nominal training size for its objectness
    scaling (default: each batch's own size). `model` may be wrapped (`.module`, as DDP/EMA do).
    """
    return loss_class(model, name)(_head(model), hyp, imgsz=imgsz)


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
    "UnknownLossError",
    "build_anchor_targets",
    "build_loss",
    "distribution_focal_loss",
    "loss_class",
    "losses_for",
    "register_loss",
]
