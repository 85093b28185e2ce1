"""Task-aligned assignment (TOOD, arXiv 2108.07755) for the anchor-free head.

For every ground-truth box, the candidate points are the cell centres strictly inside it (boxes with a side
shorter than the second level's stride are widened to it first, so small objects still get candidates); a caller
whose head cannot decode every box around its points (the anchor head) may pass each point's `reach`, and pairs
beyond it are no candidates. Each candidate scores t = s^alpha * u^beta, s the predicted probability of the box's
class and u the CIoU (>= 0) between the predicted and the ground-truth box. The `topk` best candidates of every
box become its positives. A point claimed by several boxes goes to the one it overlaps most. Positives get the
box's class as target, weighted by t normalised per box so that its best point's score equals the box's best IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from utils.boxes import bbox_iou


@dataclass
class Assignment:
    """Per point of every image: shapes (batch, points[, ...])."""

    labels: torch.Tensor  # (B, N) long class of the assigned box (0 for background points)
    boxes: torch.Tensor  # (B, N, 4) xyxy of the assigned box (pixels; zeros for background)
    scores: torch.Tensor  # (B, N, nc) soft class targets (zeros for background)
    foreground: torch.Tensor  # (B, N) bool
    gt_index: torch.Tensor  # (B, N) long index of the assigned box within its image (0 for background)


class TaskAlignedAssigner:
    """Assigns ground truth to anchor points by the task-aligned metric (defaults as ultralytics 8.4 detection)."""

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
            reach: (N, 4) per point, the farthest a box's centre may lie from the point on x and on y and the
                largest width and height the head can predict there (both exclusive), or None: any box around the
                point (the anchor-free head's distances reach every box that contains its point).

        Works on the (box, point) candidate pairs only, never on dense (B, G, N) tensors: a box covers a small
        share of the points, so this is many times less work than the dense formulation
        (tests/dense_assigner_reference.py, which tests/test_assigner.py checks this against).
        """
        batch, num_points, _ = pred_scores.shape
        num_gt = gt_boxes.shape[1]
        device = pred_scores.device
        result = Assignment(
            torch.zeros(batch, num_points, dtype=torch.long, device=device),
            torch.zeros(batch, num_points, 4, device=device),
            torch.zeros(batch, num_points, self.nc, device=device),
            torch.zeros(batch, num_points, dtype=torch.bool, device=device),
            torch.zeros(batch, num_points, dtype=torch.long, device=device),
        )
        if num_gt == 0:
            return result
        b, g, n = self.candidate_pairs(points, gt_boxes, gt_mask.bool().view(batch, num_gt, 1), reach)
        if b.numel() == 0:
            return result
        box_id, point_id = b * num_gt + g, b * num_points + n
        align, overlaps = self.alignment(pred_scores, pred_boxes, gt_labels, gt_boxes, box_id, point_id)
        chosen = self.top_candidates(align, box_id, batch * num_gt)  # indices of the positive pairs
        b, g, n, box_id, point_id, align, overlaps = (
            t.index_select(0, chosen) for t in (b, g, n, box_id, point_id, align, overlaps)
        )
        kept = self.resolve_conflicts(point_id, g, overlaps, batch * num_points)
        b, g, n, box_id, align, overlaps = (t[kept] for t in (b, g, n, box_id, align, overlaps))

        # Soft targets: each box's metric rescaled so its best positive point scores the box's best IoU.
        best_align = align.new_zeros(batch * num_gt).scatter_reduce_(0, box_id, align, "amax")
        best_overlap = overlaps.new_zeros(batch * num_gt).scatter_reduce_(0, box_id, overlaps, "amax")
        normalised = align * best_overlap[box_id] / (best_align[box_id] + self.eps)
        labels = gt_labels[b, g, 0].long()
        result.labels[b, n] = labels
        result.boxes[b, n] = gt_boxes[b, g].float()
        result.scores[b, n, labels] = normalised
        result.foreground[b, n] = True
        result.gt_index[b, n] = g
        return result

    def candidate_pairs(
        self, points: torch.Tensor, gt_boxes: torch.Tensor, gt_mask: torch.Tensor, reach: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every (image b, box g, point n) with the point strictly inside the real box g, the box's small sides
        widened to `min_side` first, and the box within the point's `reach` (see __call__) when one is given.
        Three (P,) long tensors, grouped by box (b, g) in increasing order.

        Enumerated without a dense (B, G, N) mask: the inside test runs per distinct x and per distinct y
        coordinate (a grid has few), where it holds on one run of neighbouring values; with the points sorted by
        (y, x), a box's points in one row then form one contiguous run of that order.
        """
        num_gt = gt_boxes.shape[1]
        centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        size = (gt_boxes[..., 2:] - gt_boxes[..., :2]).clamp(min=self.min_side)
        top_left, bottom_right = centre - size / 2, centre + size / 2  # (B, G, 2)
        xs, x_of = points[:, 0].unique(return_inverse=True)
        ys, y_of = points[:, 1].unique(return_inverse=True)
        # (B, G, distinct values): True on one run, as each margin is monotonic in the sorted values.
        in_x = ((xs - top_left[..., :1]) > self.eps) & ((bottom_right[..., :1] - xs) > self.eps) & gt_mask
        in_y = ((ys - top_left[..., 1:]) > self.eps) & ((bottom_right[..., 1:] - ys) > self.eps)
        x_first, x_count = in_x.to(torch.uint8).argmax(-1).flatten(), in_x.sum(-1).flatten()
        y_first, y_count = in_y.to(torch.uint8).argmax(-1).flatten(), in_y.sum(-1).flatten()

        width = len(xs)
        cell = y_of * width + x_of  # points ordered by cell = ordered by (y, x)
        order = cell.argsort(stable=True)
        sorted_cell = cell[order]
        # One segment per (box, row inside it): the points of the cells x_first .. x_first + x_count - 1.
        box_of_row, row = self.expand_runs(y_first, y_count * (x_count > 0))
        row_cell = row * width + x_first[box_of_row]
        start = torch.searchsorted(sorted_cell, row_cell)
        end = torch.searchsorted(sorted_cell, row_cell + x_count[box_of_row])
        row_of_pair, position = self.expand_runs(start, end - start)
        box = box_of_row[row_of_pair]
        b, g, n = box // num_gt, box % num_gt, order[position]
        if reach is None:
            return b, g, n
        keep = self.within_reach(gt_boxes.reshape(-1, 4).index_select(0, box).float(), points[n], reach[n])
        return b[keep], g[keep], n[keep]  # a subset keeps the grouping by box

    @staticmethod
    def within_reach(gt_boxes: torch.Tensor, points: torch.Tensor, reach: torch.Tensor) -> torch.Tensor:
        """(P,) bool: box i (xyxy) is one the head can predict at point i: its centre nearer than reach[i, :2] on
        each axis and its sides shorter than reach[i, 2:]."""
        offset = ((gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2 - points).abs()
        size = gt_boxes[:, 2:] - gt_boxes[:, :2]
        return ((offset < reach[:, :2]) & (size < reach[:, 2:])).all(-1)

    @staticmethod
    def expand_runs(first: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For runs i of `count[i]` consecutive integers from `first[i]`: each element's run and value, (total,)."""
        run = torch.repeat_interleave(torch.arange(len(count), device=count.device), count)
        offset = torch.cumsum(count, 0) - count  # where each run starts in the output
        return run, first[run] + torch.arange(len(run), device=count.device) - offset[run]

    def alignment(
        self,
        pred_scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_boxes: torch.Tensor,
        box_id: torch.Tensor,
        point_id: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Task-aligned metric and CIoU (clamped at 0) of the candidate pairs, (P,) each.

        box_id = b * G + g and point_id = b * N + n flatten (image, box) and (image, point). Gathers use flat
        index_select (much faster than multi-tensor indexing on CPU); boxes are gathered as (4, P) and handed to
        bbox_iou transposed, so each coordinate it slices off is contiguous (same values, fewer strided reads).
        """
        nc = pred_scores.shape[-1]
        cls = gt_labels.reshape(-1).index_select(0, box_id).long()
        score = pred_scores.reshape(-1).index_select(0, point_id * nc + cls).float()
        gt = gt_boxes.float().reshape(-1, 4).T.index_select(1, box_id).T
        pred = pred_boxes.float().reshape(-1, 4).T.index_select(1, point_id).T
        iou = bbox_iou(gt, pred, xywh=False, ciou=True).squeeze(-1).clamp(0)
        return score.pow(self.alpha) * iou.pow(self.beta), iou

    def top_candidates(self, align: torch.Tensor, box_id: torch.Tensor, num_boxes: int) -> torch.Tensor:
        """Indices of the `topk` highest-metric candidate pairs of each box (box_id: each pair's box).

        One stable sort on an int64 key (box, then metric descending) ranks every box's candidates at once:
        the metric is >= 0, and the bits of a non-negative float32 order as the float does.

        Ties: a box with fewer than `topk` non-zero-metric candidates also gets some of its zero-metric ones
        (here the first in (row, column) order; the dense formulation took whichever its topk returned, possibly
        points outside the box that it then dropped). So the foreground mask may differ on such points, and
        only there. That is harmless: their target score is 0 (proportional to the metric), exactly as for
        background, and every loss term of a positive is weighted by its score. (Exception in theory only: a
        metric of exactly 0 with a CIoU above 0 needs a class probability that underflowed to 0.0, where such a
        point could also win a conflict or set its box's best IoU.)
        """
        metric_bits = (align.float() + 0.0).view(torch.int32).long()  # + 0.0 turns a -0.0 into 0.0
        key = box_id * (1 << 32) + ((1 << 31) - 1 - metric_bits)
        order = key.sort(stable=True).indices
        counts = torch.bincount(box_id, minlength=num_boxes)
        first = torch.cumsum(counts, 0) - counts  # position of each box's first candidate in the sorted order
        rank = torch.arange(len(order), device=align.device) - first[box_id.index_select(0, order)]
        return order[rank < self.topk]

    @staticmethod
    def resolve_conflicts(
        point_id: torch.Tensor, g: torch.Tensor, overlaps: torch.Tensor, num_points: int
    ) -> torch.Tensor:
        """(P,) bool over positive pairs: False where the pair loses its point. A point positive for several
        boxes keeps only the box it overlaps most among those (the lowest box index on a tie, as argmax picks)."""
        best = overlaps.new_full((num_points,), -1.0).scatter_reduce_(0, point_id, overlaps, "amax")
        is_best = overlaps == best[point_id]
        lowest = g.new_full((num_points,), torch.iinfo(g.dtype).max)
        lowest.scatter_reduce_(0, point_id[is_best], g[is_best], "amin")
        return is_best & (g == lowest[point_id])
