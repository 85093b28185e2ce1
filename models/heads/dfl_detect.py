"""The anchor-free head of YOLOv8/YOLO11: per level a box branch predicting distance distributions (DFL)
and a class branch, decoded around cell centres."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from models.heads.base import DetectionHead
from models.layer_spec import register_layer
from models.layers.conv import Conv, DWConv
from utils.boxes import dist_to_box, make_anchor_points


class DFL(nn.Module):
    """Distribution focal loss integral: the expected value of a softmax over `reg_max` distance bins.

    Kept as a frozen 1x1 conv (as in the references) so parameter counts and exported graphs match them.
    """

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 4 * reg_max, n) logits -> (batch, 4, n) distances in grid units."""
        b, _, n = x.shape
        return self.conv(x.view(b, 4, self.reg_max, n).transpose(2, 1).softmax(1)).view(b, 4, n)


@register_layer()
class DFLDetect(DetectionHead):
    """YOLO11 Detect: box branch (two 3x3 Convs) and a light class branch (depth-wise + 1x1, twice)."""

    family = "dfl"
    loss_name = "DFLLoss"
    val_iou = 0.7  # ultralytics' validation NMS IoU

    def __init__(self, nc: int, in_channels: Sequence[int], strides: Sequence[float], reg_max: int = 16) -> None:
        super().__init__()
        self.nc = nc
        self.nl = len(in_channels)
        self.reg_max = reg_max
        self.no = nc + 4 * reg_max
        self.register_buffer("stride", torch.tensor([float(s) for s in strides]))
        box_channels = max(16, in_channels[0] // 4, reg_max * 4)
        cls_channels = max(in_channels[0], min(nc, 100))
        self.box_convs = nn.ModuleList(
            nn.Sequential(
                Conv(c, box_channels, 3), Conv(box_channels, box_channels, 3), nn.Conv2d(box_channels, 4 * reg_max, 1)
            )
            for c in in_channels
        )
        self.cls_convs = nn.ModuleList(
            nn.Sequential(
                nn.Sequential(DWConv(c, c, 3), Conv(c, cls_channels, 1)),
                nn.Sequential(DWConv(cls_channels, cls_channels, 3), Conv(cls_channels, cls_channels, 1)),
                nn.Conv2d(cls_channels, nc, 1),
            )
            for c in in_channels
        )
        self.dfl = DFL(reg_max)
        self.initialize_biases()

    @torch.no_grad()
    def initialize_biases(self) -> None:
        """Box logits start flat; class logits start near 5 objects per 640 image (the ultralytics prior)."""
        for box, cls, stride in zip(self.box_convs, self.cls_convs, self.stride.tolist()):
            box[-1].bias.fill_(1.0)
            cls[-1].bias[: self.nc] = math.log(5 / self.nc / (640 / stride) ** 2)

    def predict_raw(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per level (batch, 4 * reg_max + nc, h, w) logits."""
        return [torch.cat((box(x), cls(x)), 1) for box, cls, x in zip(self.box_convs, self.cls_convs, features)]

    def prediction_convs(self) -> list[nn.Conv2d]:
        """The last 1x1 conv of every box and class branch (the DFL conv after them belongs to the decode)."""
        return [branch[-1] for branch in (*self.box_convs, *self.cls_convs)]

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """(batch, cells, 4 + nc): xywh in pixels and class probabilities."""
        b = raw[0].shape[0]
        flat = torch.cat([p.view(b, self.no, -1) for p in raw], 2)
        box_logits, cls_logits = flat.split((4 * self.reg_max, self.nc), 1)
        points, point_strides = make_anchor_points(
            [p.shape[2:] for p in raw], self.stride, device=flat.device, dtype=flat.dtype
        )
        boxes = dist_to_box(self.dfl(box_logits), points.t().unsqueeze(0), xywh=True, dim=1) * point_strides.t()
        return torch.cat((boxes, cls_logits.sigmoid()), 1).transpose(1, 2)
