"""Box geometry shared by heads, losses, NMS and metrics. Boxes are (..., 4) tensors unless noted."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def xywh_to_xyxy(boxes: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Centre-size boxes to corner boxes."""
    out = boxes.clone() if isinstance(boxes, torch.Tensor) else np.copy(boxes)
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    out[..., 0] = boxes[..., 0] - half_w
    out[..., 1] = boxes[..., 1] - half_h
    out[..., 2] = boxes[..., 0] + half_w
    out[..., 3] = boxes[..., 1] + half_h
    return out


def xyxy_to_xywh(boxes: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Corner boxes to centre-size boxes."""
    out = boxes.clone() if isinstance(boxes, torch.Tensor) else np.copy(boxes)
    out[..., 0] = (boxes[..., 0] + boxes[..., 2]) / 2
    out[..., 1] = (boxes[..., 1] + boxes[..., 3]) / 2
    out[..., 2] = boxes[..., 2] - boxes[..., 0]
    out[..., 3] = boxes[..., 3] - boxes[..., 1]
    return out


def make_anchor_points(
    shapes: Sequence[tuple[int, int]],
    strides: Sequence[float] | torch.Tensor,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres of every level in grid units, (N, 2) as (x, y), and each point's stride, (N, 1)."""
    points, point_strides = [], []
    for (h, w), stride in zip(shapes, strides):
        xs = torch.arange(w, device=device, dtype=dtype) + offset
        ys = torch.arange(h, device=device, dtype=dtype) + offset
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), -1).view(-1, 2))
        point_strides.append(torch.full((h * w, 1), float(stride), device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def dist_to_box(distances: torch.Tensor, points: torch.Tensor, xywh: bool = True, dim: int = -1) -> torch.Tensor:
    """(left, top, right, bottom) distances from points to boxes, as xywh or xyxy."""
    left_top, right_bottom = distances.chunk(2, dim)
    top_left = points - left_top
    bottom_right = points + right_bottom
    if xywh:
        return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim)
    return torch.cat((top_left, bottom_right), dim)


def box_to_dist(points: torch.Tensor, boxes_xyxy: torch.Tensor, max_dist: float) -> torch.Tensor:
    """Inverse of dist_to_box for xyxy boxes, clamped to [0, max_dist - 0.01] (the DFL target range)."""
    left_top, right_bottom = boxes_xyxy.chunk(2, -1)
    return torch.cat((points - left_top, right_bottom - points), -1).clamp_(0, max_dist - 0.01)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    (a1, a2), (b1, b2) = boxes1.float().unsqueeze(1).chunk(2, 2), boxes2.float().unsqueeze(0).chunk(2, 2)
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(0).prod(2)
    return inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)


def bbox_iou(
    box1: torch.Tensor, box2: torch.Tensor, xywh: bool = True, ciou: bool = False, eps: float = 1e-7
) -> torch.Tensor:
    """Element-wise IoU (or Complete-IoU) of two broadcastable box tensors; returns (..., 1)."""
    if xywh:
        (x1, y1, w1, h1), (x2, y2, w2, h2) = box1.chunk(4, -1), box2.chunk(4, -1)
        b1_x1, b1_x2, b1_y1, b1_y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
        b2_x1, b2_x2, b2_y1, b2_y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    else:
        b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)
        b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
        w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(eps)
        w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(eps)
    inter = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0) * (
        b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)
    ).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if not ciou:
        return iou
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1)  # enclosing box
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) + (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = (4 / math.pi**2) * ((w2 / h2).atan() - (w1 / h1).atan()).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
