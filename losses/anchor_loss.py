"""The YOLOv5 loss for the anchor-based head: CIoU box loss, IoU-targeted objectness with per-level balance,
and BCE class loss, each scaled by its gain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from losses.anchor_targets import build_anchor_targets
from losses.base import DetectionLoss, LossHyp, check_anchor_maps, check_targets, register_loss
from losses.bce import FocalBCEWithLogits, smooth_bce_targets
from models.heads.anchor_detect import AnchorDetect
from utils.boxes import bbox_iou

# Objectness weight per level, finest first: small-object levels see many more cells, mostly background.
_BALANCE = {3: (4.0, 1.0, 0.4)}
_BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)  # P3..P7


@dataclass(frozen=True)
class AnchorLossHyp(LossHyp):
    """The anchor-based loss's section of a hyperparameter file (data/hyps/hyp.scratch-anchor.yaml)."""

    box: float  # CIoU box loss gain
    cls: float  # class loss gain
    cls_pw: float  # class BCE positive weight
    obj: float  # objectness loss gain (scaled with image size)
    obj_pw: float  # objectness BCE positive weight
    anchor_t: float  # anchor-to-target size ratio threshold for matching
    fl_gamma: float  # focal loss gamma (0 = plain BCE)
    label_smoothing: float


def objectness_balance(levels: int) -> tuple[float, ...]:
    """Per-level objectness weights for `levels` output levels (fine to coarse)."""
    if levels in _BALANCE:
        return _BALANCE[levels]
    if levels > len(_BALANCE_DEFAULT):
        raise ValueError(f"no objectness balance defined for {levels} levels (at most {len(_BALANCE_DEFAULT)})")
    return _BALANCE_DEFAULT[:levels]


def scaled_gains(hyp: AnchorLossHyp, levels: int, nc: int, imgsz: float) -> tuple[float, float, float]:
    """(box, obj, cls) gains as YOLOv5 scales them: the hyp files are tuned for 3 levels, 80 classes, 640 px.

    box x 3/levels; cls x nc/80 x 3/levels; obj x (imgsz/640)^2 x 3/levels (objectness is summed over more
    cells on larger images, so its gain follows the cell count).
    """
    per_level = 3.0 / levels
    return (
        hyp.box * per_level,
        hyp.obj * (imgsz / 640.0) ** 2 * per_level,
        hyp.cls * nc / 80.0 * per_level,
    )


@register_loss
class AnchorLoss(DetectionLoss):
    """Loss of the anchor-based head. Items: ("box", "obj", "cls").

    Anchors are read from `head.anchors` (pixels) at every call, so anchors replaced by AutoAnchor are used.
    `imgsz` is the nominal training size used to scale the objectness gain; when None, each batch's own input
    size (from the map shapes and strides, sqrt of its area) is used.
    """

    names = ("box", "obj", "cls")
    hyp_type = AnchorLossHyp
    hyp_file = "hyp.scratch-yolov5.yaml"
    head_type = AnchorDetect

    def __init__(self, head: AnchorDetect, hyp: Mapping[str, Any] | AnchorLossHyp, imgsz: int | None = None) -> None:
        if not isinstance(head, AnchorDetect):
            raise TypeError(f"AnchorLoss needs an AnchorDetect head, got {type(head).__name__}")
        self.hyp: AnchorLossHyp = self.read_hyp(hyp)
        if imgsz is not None and imgsz <= 0:
            raise ValueError(f"imgsz must be positive, got {imgsz}")
        self.head = head
        self.imgsz = imgsz
        self.nc, self.nl, self.na = head.nc, head.nl, head.na
        self.balance = objectness_balance(self.nl)
        self.cls_positive, self.cls_negative = smooth_bce_targets(self.hyp.label_smoothing)
        gamma = self.hyp.fl_gamma
        self.bce_cls = FocalBCEWithLogits(self.hyp.cls_pw, gamma)
        self.bce_obj = FocalBCEWithLogits(self.hyp.obj_pw, gamma)

    def anchors_grid(self) -> torch.Tensor:
        """(levels, anchors, 2) anchors in grid units of their level."""
        return self.head.anchors / self.head.stride.view(-1, 1, 1)

    def class_targets(self, classes: torch.Tensor) -> torch.Tensor:
        """(n, nc) BCE targets of matched predictions: (1 - eps/2) for the box's class, eps/2 elsewhere."""
        targets = torch.full((len(classes), self.nc), self.cls_negative, device=classes.device)
        targets[torch.arange(len(classes), device=classes.device), classes] = self.cls_positive
        return targets

    def __call__(self, raw_preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = check_anchor_maps(raw_preds, self.nl, self.na, self.nc)
        device = first.device
        batch_size = first.shape[0]
        targets = check_targets(targets, batch_size, self.nc).to(device)
        grid_shapes = [(p.shape[2], p.shape[3]) for p in raw_preds]
        matches = build_anchor_targets(grid_shapes, targets, self.anchors_grid().to(device), self.hyp.anchor_t)

        imgsz = self.imgsz
        if imgsz is None:  # the batch's own input size: map size x stride
            imgsz = float(grid_shapes[0][0] * grid_shapes[0][1]) ** 0.5 * float(self.head.stride[0])
        box_gain, obj_gain, cls_gain = scaled_gains(self.hyp, self.nl, self.nc, imgsz)

        zero = torch.zeros((), device=device)
        loss_box, loss_obj, loss_cls = zero.clone(), zero.clone(), zero.clone()
        for level, (pred, match) in enumerate(zip(raw_preds, matches)):
            pred = pred.float()
            obj_target = torch.zeros(pred.shape[:4], device=device)
            if len(match):
                cell_pred = pred[match.image, match.anchor, match.grid_y, match.grid_x]
                xy = cell_pred[:, :2].sigmoid() * 2 - 0.5
                wh = (cell_pred[:, 2:4].sigmoid() * 2) ** 2 * match.anchor_wh
                iou = bbox_iou(torch.cat((xy, wh), 1), match.box, xywh=True, ciou=True).squeeze(-1)
                loss_box = loss_box + (1.0 - iou).mean()
                # Objectness target: how well this cell's box fits (IoU clamped to >= 0), not just 1.
                obj_target[match.image, match.anchor, match.grid_y, match.grid_x] = iou.detach().clamp(0)
                if self.nc > 1:  # a single class is fully described by objectness
                    loss_cls = loss_cls + self.bce_cls(cell_pred[:, 5:], self.class_targets(match.cls))
            loss_obj = loss_obj + self.bce_obj(pred[..., 4], obj_target) * self.balance[level]

        loss_box, loss_obj, loss_cls = loss_box * box_gain, loss_obj * obj_gain, loss_cls * cls_gain
        total = (loss_box + loss_obj + loss_cls) * batch_size
        return total, torch.stack((loss_box, loss_obj, loss_cls)).detach()
