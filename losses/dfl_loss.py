"""The YOLOv8/YOLO11 loss for the anchor-free DFL head: task-aligned assignment, CIoU + distribution focal
loss on the assigned points, BCE on the soft class targets everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from losses.assigner import Assignment, TaskAlignedAssigner
from losses.base import DetectionLoss, LossHyp, check_raw_preds, check_targets, register_loss
from losses.bce import smooth_bce_targets
from models.heads.dfl_detect import DFLDetect
from utils.boxes import bbox_iou, box_to_dist, dist_to_box, make_anchor_points, xywh_to_xyxy


@dataclass(frozen=True)
class DFLLossHyp(LossHyp):
    """The DFL loss's section of a hyperparameter file (data/hyps/hyp.scratch-dfl.yaml)."""

    box: float  # CIoU box loss gain
    cls: float  # class BCE loss gain
    dfl: float  # distribution focal loss gain
    label_smoothing: float


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL (GFL, arXiv 2006.04388): cross-entropy towards the two bins around a continuous target.

    logits (n, reg_max) over bins 0..reg_max-1, target (n,) in [0, reg_max - 1); the loss puts weight
    (right - t) on the left bin and (t - left) on the right one. Returns (n,).
    """
    reg_max = logits.shape[-1]
    target = target.clamp(0, reg_max - 1 - 0.01)
    left = target.long()
    weight_left = left + 1 - target
    log_prob = F.log_softmax(logits, -1)
    picked = log_prob.gather(-1, torch.stack((left, left + 1), -1))
    return -(picked[..., 0] * weight_left + picked[..., 1] * (1 - weight_left))


def targets_per_image(targets: torch.Tensor, batch_size: int, image_wh: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Pad the (M, 6) targets into per-image tensors: labels (B, G, 1), xyxy pixel boxes (B, G, 4), mask (B, G, 1)."""
    device = targets.device
    image = targets[:, 0].long()
    counts = torch.bincount(image, minlength=batch_size) if len(image) else torch.zeros(batch_size, dtype=torch.long)
    most = int(counts.max()) if len(image) else 0
    labels = torch.zeros(batch_size, most, 1, device=device)
    boxes = torch.zeros(batch_size, most, 4, device=device)
    mask = torch.zeros(batch_size, most, 1, dtype=torch.bool, device=device)
    if most:
        order = torch.argsort(image, stable=True)
        image, sorted_targets = image[order], targets[order]
        start = torch.cumsum(counts.to(device), 0) - counts.to(device)
        slot = torch.arange(len(image), device=device) - start[image]
        labels[image, slot, 0] = sorted_targets[:, 1]
        boxes[image, slot] = xywh_to_xyxy(sorted_targets[:, 2:6] * image_wh.repeat(2))
        mask[image, slot] = True
    return labels, boxes, mask


@register_loss
class DFLLoss(DetectionLoss):
    """Loss of the DFL head. Items: ("box", "cls", "dfl").

    Label smoothing (0 = the ultralytics behaviour) softens the class targets of assigned points only: the
    assigned class gets (1 - eps/2) and every other class eps/2, both times the point's alignment score;
    background points keep all-zero targets. Box and DFL weights use the unsmoothed scores. `imgsz` is accepted
    for the registry's common signature and unused: no gain of this loss depends on the image size.
    """

    names = ("box", "cls", "dfl")
    hyp_type = DFLLossHyp
    hyp_file = "hyp.scratch-dfl.yaml"
    head_type = DFLDetect

    def __init__(
        self,
        head: DFLDetect,
        hyp: Mapping[str, Any] | DFLLossHyp,
        imgsz: int | None = None,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
    ) -> None:
        if not isinstance(head, DFLDetect):
            raise TypeError(f"DFLLoss needs a DFLDetect head, got {type(head).__name__}")
        self.hyp: DFLLossHyp = self.read_hyp(hyp)
        self.head = head
        self.nc, self.nl, self.reg_max = head.nc, head.nl, head.reg_max
        self.cls_positive, self.cls_negative = smooth_bce_targets(self.hyp.label_smoothing)
        self.assigner = TaskAlignedAssigner(self.nc, topk, alpha, beta, head.stride.tolist())

    def decode_distances(self, box_logits: torch.Tensor) -> torch.Tensor:
        """(B, N, 4 * reg_max) logits -> (B, N, 4) expected distances in grid units."""
        b, n, _ = box_logits.shape
        bins = torch.arange(self.reg_max, device=box_logits.device, dtype=box_logits.dtype)
        return box_logits.view(b, n, 4, self.reg_max).softmax(-1) @ bins

    def class_targets(self, assigned: Assignment) -> torch.Tensor:
        """(B, N, nc) BCE class targets: the assigner's soft scores, label-smoothed on assigned points."""
        if self.cls_negative == 0:
            return assigned.scores
        one_hot = F.one_hot(assigned.labels, self.nc).float()
        smoothed = one_hot * self.cls_positive + (1 - one_hot) * self.cls_negative
        return smoothed * assigned.scores.sum(-1, keepdim=True)  # each assigned point's alignment score

    def __call__(self, raw_preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_raw_preds(raw_preds, self.nl, "DFL")
        no = 4 * self.reg_max + self.nc
        if raw_preds[0].ndim != 4 or raw_preds[0].shape[1] != no:
            raise ValueError(f"DFL loss: level maps must be (batch, {no}, h, w), got {tuple(raw_preds[0].shape)}")
        device = raw_preds[0].device
        batch_size = raw_preds[0].shape[0]
        targets = check_targets(targets, batch_size, self.nc).to(device)
        strides = self.head.stride.to(device)
        flat = torch.cat([p.float().flatten(2) for p in raw_preds], 2).transpose(1, 2)  # (B, N, no)
        box_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), 2)
        shapes = [tuple(p.shape[2:]) for p in raw_preds]
        points, point_strides = make_anchor_points(shapes, strides, device=device)  # grid units, (N, 1)
        image_hw = torch.tensor(shapes[0], device=device, dtype=torch.float32) * strides[0]

        gt_labels, gt_boxes, gt_mask = targets_per_image(targets, batch_size, image_hw.flip(0))
        pred_boxes = dist_to_box(self.decode_distances(box_logits), points, xywh=False)  # grid units
        assigned = self.assigner(
            cls_logits.detach().sigmoid(),
            pred_boxes.detach() * point_strides,
            points * point_strides,
            gt_labels,
            gt_boxes,
            gt_mask,
        )
        scores = assigned.scores
        score_sum = scores.sum().clamp(min=1)  # normaliser: at least one "object" so empty batches stay finite

        cls_target = self.class_targets(assigned)
        loss_cls = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="sum") / score_sum

        fg = assigned.foreground
        if fg.any():
            weight = scores[fg].sum(-1)
            target_boxes = assigned.boxes / point_strides  # grid units
            iou = bbox_iou(pred_boxes[fg], target_boxes[fg], xywh=False, ciou=True).squeeze(-1)
            loss_box = ((1.0 - iou) * weight).sum() / score_sum
            target_dist = box_to_dist(points.expand_as(pred_boxes[..., :2])[fg], target_boxes[fg], self.reg_max - 1)
            dfl = distribution_focal_loss(box_logits[fg].view(-1, self.reg_max), target_dist.view(-1))
            loss_dfl = (dfl.view(-1, 4).mean(-1) * weight).sum() / score_sum
        else:  # keep the box branch in the graph so every parameter gets a (zero) gradient
            loss_box = loss_dfl = box_logits.sum() * 0.0

        loss_box, loss_cls, loss_dfl = (
            loss_box * self.hyp.box,
            loss_cls * self.hyp.cls,
            loss_dfl * self.hyp.dfl,
        )
        total = (loss_box + loss_cls + loss_dfl) * batch_size
        return total, torch.stack((loss_box, loss_cls, loss_dfl)).detach()
