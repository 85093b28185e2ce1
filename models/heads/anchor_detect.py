"""The anchor-based head of YOLOv5: per level, a 1x1 conv predicting (xywh, objectness, classes) per anchor."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from models.heads.base import DetectionHead
from models.layer_spec import register_layer
from utils.autoanchor import check_anchors, label_wh_at_size

# YOLOv5's P3 anchors in grid units; used to derive placeholder anchors when a config gives only a count.
_DEFAULT_ANCHOR_SHAPES = ((1.25, 1.625), (2.0, 3.75), (4.125, 2.875))


def placeholder_anchors(count: int, strides: Sequence[float]) -> list[list[float]]:
    """`count` anchors per level scaled to each stride; AutoAnchor replaces them before training."""
    shapes = [_DEFAULT_ANCHOR_SHAPES[i % 3] for i in range(count)]
    return [[v * s * (1 + i // 3) for i, wh in enumerate(shapes) for v in wh] for s in strides]


@register_layer()
class AnchorDetect(DetectionHead):
    """YOLOv5 Detect. Anchors are stored in pixels, shape (levels, anchors, 2), ordered to match the strides."""

    has_objectness = True
    family = "anchor"
    loss_name = "AlignedAnchorLoss"  # YOLOv5's own: --loss AnchorLoss
    val_iou = 0.6  # YOLOv5's validation NMS IoU

    def __init__(
        self,
        nc: int,
        anchors: Sequence[Sequence[float]] | int,
        in_channels: Sequence[int],
        strides: Sequence[float],
    ) -> None:
        super().__init__()
        if isinstance(anchors, int):
            anchors = placeholder_anchors(anchors, strides)
        if len(anchors) != len(in_channels):
            raise ValueError(f"AnchorDetect: {len(anchors)} anchor levels for {len(in_channels)} input layers")
        if any(len(level) % 2 or len(level) != len(anchors[0]) for level in anchors):
            raise ValueError(f"AnchorDetect: every anchor level must list the same number of (w, h) pairs: {anchors}")
        self.nc = nc
        self.no = nc + 5
        self.nl = len(in_channels)
        self.na = len(anchors[0]) // 2
        self.register_buffer("stride", torch.tensor([float(s) for s in strides]))
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32).view(self.nl, self.na, 2))
        self.order_anchors()
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in in_channels)
        self.initialize_biases()

    def order_anchors(self) -> None:
        """Flip the anchor levels if their sizes run against the strides (small anchors belong to P3)."""
        area = self.anchors.prod(-1).mean(-1)
        if self.nl > 1 and (area[-1] - area[0]).sign() != (self.stride[-1] - self.stride[0]).sign():
            self.anchors[:] = self.anchors.flip(0)

    def prepare_training(self, dataset: Any, hyp: Mapping[str, Any], imgsz: int, seed: int) -> None:
        """AutoAnchor: refit the anchors when they match under 98% of the training boxes (seeded k-means)."""
        labelled = [
            (labels[:, 3:5], shape[::-1]) for labels, shape in zip(dataset.labels, dataset.shapes) if len(labels)
        ]  # dataset shapes are (width, height)
        if labelled:
            wh, shapes = zip(*labelled)
            check_anchors(
                self, label_wh_at_size(wh, shapes, imgsz), threshold=hyp.get("anchor_t", 4.0), imgsz=imgsz, seed=seed
            )

    @torch.no_grad()
    def initialize_biases(self, class_frequency: torch.Tensor | None = None) -> None:
        """Start objectness near 8 objects per 640 image and classes near 0.6/nc (YOLOv5's prior)."""
        for conv, stride in zip(self.m, self.stride.tolist()):
            bias = conv.bias.view(self.na, -1)
            bias[:, 4] += math.log(8 / (640 / stride) ** 2)
            if class_frequency is None:
                bias[:, 5 : 5 + self.nc] += math.log(0.6 / (self.nc - 0.99999))
            else:
                bias[:, 5 : 5 + self.nc] += torch.log(class_frequency / class_frequency.sum())

    def predict_raw(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level (batch, anchors, h, w, 5 + nc) logits."""
        out = []
        for conv, x in zip(self.m, features):
            y = conv(x)
            b, _, h, w = y.shape
            out.append(y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return out

    def prediction_convs(self) -> list[nn.Conv2d]:
        """The 1x1 conv of every level."""
        return list(self.m)

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """(batch, anchors*cells, 5 + nc): xywh in pixels, objectness and class probabilities."""
        decoded = []
        for level, p in enumerate(raw):
            b, na, h, w, no = p.shape
            ys = torch.arange(h, device=p.device, dtype=p.dtype)
            xs = torch.arange(w, device=p.device, dtype=p.dtype)
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            grid = torch.stack((grid_x, grid_y), -1).view(1, 1, h, w, 2) - 0.5
            xy, wh, scores = p.sigmoid().split((2, 2, self.nc + 1), -1)
            xy = (xy * 2 + grid) * self.stride[level]
            wh = (wh * 2) ** 2 * self.anchors[level].view(1, na, 1, 1, 2).to(p.dtype)
            decoded.append(torch.cat((xy, wh, scores), -1).view(b, -1, no))
        return torch.cat(decoded, 1)
