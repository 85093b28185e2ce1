"""A task-aligned loss for the anchor-based (YOLOv5) head: the assignment and normalisation of the YOLOv8/11 loss
applied to YOLOv5's anchors, so the anchor family learns from scratch as fast as the DFL family.

Every (cell, anchor) of every level is a candidate, located at its cell's centre, predicting the box its raw
outputs decode to (the head's own decoding) and the score `objectness x class probability` that inference
ranks by. The task-aligned assigner (losses/assigner.py) gives each ground-truth box the `topk` candidates
whose score^alpha x IoU^beta is highest among those inside it: 10 per anchor shape by default (30 for YOLOv5's three),
so a box gets positives at as many places as the anchor-free head's 10; with 10 in all, each box's positives
crowded into three or four cells and the objectness the head learned on unseen sites stayed far below the DFL
family's confidence (benchmarks/results/anchor_convergence.md). Then:

- objectness: BCE on every candidate towards the assigner's soft target (the alignment, rescaled so a box's
  best candidate scores that box's best IoU; 0 for background), summed and divided by the sum of targets;
- box: 1 - CIoU of each positive, weighted by its soft target, same normaliser;
- class (nc > 1): BCE of each positive's class logits towards its box's class, weighted by its soft target.

What this changes against YOLOv5's loss (losses/anchor_loss.py, kept as `--loss AnchorLoss`): positives are
chosen by how well they already predict the box, not by a fixed anchor-shape ratio and neighbour-cell rule;
objectness is normalised by the number of objects instead of averaged over all cells (so its gradient does not
shrink with the image size or grow with the level balance); no gain depends on the image size or class count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from losses.assigner import TaskAlignedAssigner
from losses.base import DetectionLoss, LossHyp, check_anchor_maps, check_targets, register_loss
from losses.bce import smooth_bce_targets
from losses.dfl_loss import targets_per_image
from models.heads.anchor_detect import AnchorDetect
from utils.boxes import bbox_iou

TOPK_PER_ANCHOR = 10  # candidates per box and anchor shape: the anchor-free loss's topk at each anchor shape


@dataclass(frozen=True)
class AlignedAnchorLossHyp(LossHyp):
    """The aligned anchor loss's section of a hyperparameter file (data/hyps/hyp.scratch-anchor.yaml)."""

    box: float  # CIoU box loss gain
    obj: float  # objectness BCE gain
    cls: float  # class BCE gain (unused with one class)
    label_smoothing: float


def anchor_candidates(
    raw_preds: list[torch.Tensor], anchors: torch.Tensor, strides: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flatten the head's maps into candidates.

    Returns logits (B, N, 5 + nc), decoded xyxy boxes in pixels (B, N, 4), candidate centres in pixels (N, 2)
    and each candidate's reach (N, 4), N = sum over levels of anchors x h x w, in the head's own (anchor, y, x)
    order. The reach is what the decoding can express: a centre less than one stride from the cell's centre on
    each axis (2 * sigmoid - 0.5 cells from the cell's corner) and sides less than 4x the anchor's
    ((2 * sigmoid)^2 < 4).
    """
    logits, boxes, centres, reach = [], [], [], []
    for level, p in enumerate(raw_preds):
        b, na, h, w, no = p.shape
        stride = strides[level]
        ys = torch.arange(h, device=p.device, dtype=torch.float32)
        xs = torch.arange(w, device=p.device, dtype=torch.float32)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((grid_x, grid_y), -1).view(1, 1, h, w, 2)
        p = p.float()
        xy = (p[..., :2].sigmoid() * 2 - 0.5 + grid) * stride  # the head's decoding (AnchorDetect.decode)
        wh = (p[..., 2:4].sigmoid() * 2) ** 2 * anchors[level].view(1, na, 1, 1, 2)
        boxes.append(torch.cat((xy - wh / 2, xy + wh / 2), -1).view(b, -1, 4))
        logits.append(p.view(b, -1, no))
        centres.append(((grid + 0.5) * stride).expand(1, na, h, w, 2).reshape(-1, 2))
        largest_side = 4.0 * anchors[level].to(p.device).float().view(na, 1, 2).expand(na, h * w, 2).reshape(-1, 2)
        reach.append(torch.cat((stride.float().expand(na * h * w, 2), largest_side), -1))
    return torch.cat(logits, 1), torch.cat(boxes, 1), torch.cat(centres), torch.cat(reach)


@register_loss
class AlignedAnchorLoss(DetectionLoss):
    """Task-aligned loss of the anchor-based head (the default). Items: ("box", "obj", "cls").

    `imgsz` is accepted for the registry's common signature and unused: no gain depends on the image size.
    `reachable_only` limits each box's candidates to those whose decoding can express it (centre within one stride,
    sides under 4x the anchor): about a third of the positives otherwise lie beyond that, yet limiting them did not
    make yolov5n learn faster on the trees data (benchmarks/results/anchor_convergence.md, item 9), so it is off.
    """

    names = ("box", "obj", "cls")
    hyp_type = AlignedAnchorLossHyp
    hyp_file = "hyp.scratch-anchor.yaml"
    head_type = AnchorDetect

    def __init__(
        self,
        head: AnchorDetect,
        hyp: Mapping[str, Any] | AlignedAnchorLossHyp,
        imgsz: int | None = None,
        topk: int | None = None,
        alpha: float = 0.5,
        beta: float = 6.0,
        reachable_only: bool = False,
    ) -> None:
        if not isinstance(head, AnchorDetect):
            raise TypeError(f"AlignedAnchorLoss needs an AnchorDetect head, got {type(head).__name__}")
        self.hyp: AlignedAnchorLossHyp = self.read_hyp(hyp)
        self.head = head
        self.nc, self.nl, self.na = head.nc, head.nl, head.na
        self.cls_positive, self.cls_negative = smooth_bce_targets(self.hyp.label_smoothing)
        topk = TOPK_PER_ANCHOR * self.na if topk is None else topk
        self.assigner = TaskAlignedAssigner(self.nc, topk, alpha, beta, head.stride.tolist())
        self.reachable_only = reachable_only

    def __call__(self, raw_preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = check_anchor_maps(raw_preds, self.nl, self.na, self.nc)
        device = first.device
        batch_size = first.shape[0]
        targets = check_targets(targets, batch_size, self.nc).to(device)
        strides = self.head.stride.to(device)
        logits, boxes, centres, reach = anchor_candidates(raw_preds, self.head.anchors.to(device), strides)
        obj_logits, cls_logits = logits[..., 4], logits[..., 5:]

        image_hw = torch.tensor(first.shape[2:4], device=device, dtype=torch.float32) * strides[0]
        gt_labels, gt_boxes, gt_mask = targets_per_image(targets, batch_size, image_hw.flip(0))
        with torch.no_grad():  # the score inference ranks by
            scores = obj_logits.sigmoid()[..., None] * (cls_logits.sigmoid() if self.nc > 1 else 1.0)
        assigned = self.assigner(
            scores, boxes.detach(), centres, gt_labels, gt_boxes, gt_mask, reach if self.reachable_only else None
        )
        soft = assigned.scores.sum(-1)  # (B, N) the candidate's target quality, 0 on background
        normaliser = soft.sum().clamp(min=1)

        loss_obj = F.binary_cross_entropy_with_logits(obj_logits, soft, reduction="sum") / normaliser
        fg = assigned.foreground
        if fg.any():
            weight = soft[fg]
            iou = bbox_iou(boxes[fg], assigned.boxes[fg], xywh=False, ciou=True).squeeze(-1)
            loss_box = ((1.0 - iou) * weight).sum() / normaliser
            if self.nc > 1:
                one_hot = F.one_hot(assigned.labels[fg], self.nc).float()
                cls_target = one_hot * self.cls_positive + (1 - one_hot) * self.cls_negative
                bce = F.binary_cross_entropy_with_logits(cls_logits[fg], cls_target, reduction="none")
                loss_cls = (bce.sum(-1) * weight).sum() / normaliser
            else:
                loss_cls = cls_logits.sum() * 0.0
        else:  # keep every output in the graph so each parameter gets a (zero) gradient
            loss_box = loss_cls = logits.sum() * 0.0

        loss_box, loss_obj, loss_cls = loss_box * self.hyp.box, loss_obj * self.hyp.obj, loss_cls * self.hyp.cls
        total = (loss_box + loss_obj + loss_cls) * batch_size
        return total, torch.stack((loss_box, loss_obj, loss_cls)).detach()
