"""Spatial pyramid pooling: SPP (parallel max-pools) and SPPF (the same receptive fields, chained)."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.layer_spec import register_layer
from models.layers.conv import Conv


@register_layer(channels="scaled")
class SPP(nn.Module):
    """Concatenate max-pools of several kernel sizes (YOLOv3-SPP / YOLOv5 v5)."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = Conv(in_channels, hidden, 1, 1)
        self.cv2 = Conv(hidden * (len(kernel_sizes) + 1), out_channels, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [pool(x) for pool in self.m], 1))


@register_layer(channels="scaled")
class SPPF(nn.Module):
    """Fast SPP: one k x k max-pool applied three times equals SPP with kernels (k, 2k-1, 3k-2)."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = Conv(in_channels, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, out_channels, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=kernel_size, stride=1, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))
