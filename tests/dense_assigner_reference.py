"""The task-aligned assigner as first written, on dense (batch, boxes, points) tensors: the straightforward reference
that tests/test_assigner.py and benchmarks/assigner_speed.py compare losses/assigner.py's sparse version against."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from losses.assigner import Assignment
from utils.boxes import bbox_iou


class DenseTaskAlignedAssigner:
    """The assigner as first written: every step on dense (B, G, N) tensors (the reference for the fast one)."""

    def __init__(
        self,
        nc: int,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        strides: Sequence[float] = (8.0, 16.0, 32.0),
        eps: float = 1e-9,
    ) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.nc, self.topk, self.alpha, self.beta, self.eps = nc, topk, alpha, beta, eps
        strides = [float(s) for s in strides]
        # Smallest side a box is given when looking for candidate points (the second level's stride).
        self.min_side = strides[1] if len(strides) > 1 else strides[0]

    @torch.no_grad()
    def __call__(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_mask: torch.Tensor,
        reach: torch.Tensor | None = None,
    ) -> Assignment:
        """Assign.

        Args:
            pred_scores: (B, N, nc) class probabilities (after sigmoid), detached.
            pred_boxes: (B, N, 4) predicted xyxy boxes in pixels.
            points: (N, 2) point coordinates (x, y) in pixels.
            gt_labels: (B, G, 1) classes, padded.
            gt_boxes: (B, G, 4) xyxy in pixels, padded.
            gt_mask: (B, G, 1) True for real boxes, False for padding.
            reach: (N, 4) the farthest centre offset (x, y) and largest size (w, h) each point can predict, or None.
        """
        batch, num_points, _ = pred_scores.shape
        num_gt = gt_boxes.shape[1]
        device = pred_scores.device
        if num_gt == 0:
            return Assignment(
                torch.zeros(batch, num_points, dtype=torch.long, device=device),
                torch.zeros(batch, num_points, 4, device=device),
                torch.zeros(batch, num_points, self.nc, device=device),
                torch.zeros(batch, num_points, dtype=torch.bool, device=device),
                torch.zeros(batch, num_points, dtype=torch.long, device=device),
            )
        gt_mask = gt_mask.bool().view(batch, num_gt, 1)
        inside = self.points_in_boxes(points, gt_boxes, reach) & gt_mask  # (B, G, N)
        align, overlaps = self.alignment(pred_scores, pred_boxes, gt_labels, gt_boxes, inside)
        positive = self.top_candidates(align) & inside  # (B, G, N)
        positive = self.resolve_conflicts(positive, overlaps)

        foreground = positive.any(1)  # (B, N)
        gt_index = positive.to(torch.uint8).argmax(1)  # the single box of each positive point
        labels = gt_labels.long().view(batch, num_gt).gather(1, gt_index)
        boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4)).float()
        scores = torch.zeros(batch, num_points, self.nc, device=device)
        scores.scatter_(2, labels[..., None], 1.0)
        scores *= foreground[..., None]

        # Soft targets: each box's metric rescaled so its best positive point scores the box's best IoU.
        align = align * positive
        overlaps = overlaps * positive
        best_align = align.amax(-1, keepdim=True)
        best_overlap = overlaps.amax(-1, keepdim=True)
        normalised = (align * best_overlap / (best_align + self.eps)).amax(1)  # (B, N)
        scores *= normalised[..., None]
        boxes *= foreground[..., None]
        labels *= foreground
        gt_index *= foreground
        return Assignment(labels, boxes, scores, foreground, gt_index)

    def points_in_boxes(
        self, points: torch.Tensor, gt_boxes: torch.Tensor, reach: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, G, N): the point lies strictly inside the box, small sides widened to `min_side` first, and the box
        is within the point's reach (centre offset and size below it on both axes) when one is given."""
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        true_size = gt_boxes[..., 2:] - gt_boxes[..., :2]
        size = true_size.clamp(min=self.min_side)
        top_left = (centre - size / 2).unsqueeze(2)  # (B, G, 1, 2)
        bottom_right = (centre + size / 2).unsqueeze(2)
        margins = torch.cat((points - top_left, bottom_right - points), -1)  # (B, G, N, 4)
        inside = margins.amin(-1) > self.eps
        if reach is None:
            return inside
        offset = (centre.unsqueeze(2) - points).abs()  # (B, G, N, 2)
        return inside & (offset < reach[:, :2]).all(-1) & (true_size.unsqueeze(2) < reach[:, 2:]).all(-1)

    def alignment(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        candidates: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Task-aligned metric and CIoU (clamped at 0), (B, G, N) each, computed only on candidate pairs."""
        align = torch.zeros(candidates.shape, device=pred_scores.device)
        overlaps = torch.zeros(candidates.shape, device=pred_scores.device)
        b, g, n = candidates.nonzero(as_tuple=True)
        if b.numel():
            cls = gt_labels[b, g, 0].long()
            score = pred_scores[b, n, cls].float()
            iou = bbox_iou(gt_boxes[b, g].float(), pred_boxes[b, n].float(), xywh=False, ciou=True).squeeze(-1)
            iou = iou.clamp(0)
            overlaps[b, g, n] = iou
            align[b, g, n] = score.pow(self.alpha) * iou.pow(self.beta)
        return align, overlaps

    def top_candidates(self, align: torch.Tensor) -> torch.Tensor:
        """(B, G, N) True for each box's `topk` highest-metric points."""
        k = min(self.topk, align.shape[-1])
        index = align.topk(k, dim=-1).indices
        chosen = torch.zeros(align.shape, dtype=torch.bool, device=align.device)
        return chosen.scatter_(-1, index, True)

    @staticmethod
    def resolve_conflicts(positive: torch.Tensor, overlaps: torch.Tensor) -> torch.Tensor:
        """A point positive for several boxes keeps only the box it overlaps most (among those boxes)."""
        claimed = positive.sum(1, keepdim=True) > 1  # (B, 1, N)
        best = torch.where(positive, overlaps, torch.full_like(overlaps, -1.0)).argmax(1, keepdim=True)
        winner = torch.zeros_like(positive).scatter_(1, best, True)
        return torch.where(claimed, winner, positive)
