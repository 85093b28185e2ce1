"""Squeeze-and-excitation (arXiv 1709.01507): a per-channel gate computed from the globally pooled map."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.layer_spec import round_divisible


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 conv (reduce) -> ReLU -> 1x1 conv (expand) -> sigmoid gate on the input.

    The reduced width is `channels * reduction_ratio` rounded to a multiple of 8 (1/16 as in MobileOne-S4).
    """

    def __init__(self, channels: int, reduction_ratio: float = 1 / 16, reduced_channels: int | None = None) -> None:
        super().__init__()
        reduced = reduced_channels or round_divisible(channels * reduction_ratio)
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()
