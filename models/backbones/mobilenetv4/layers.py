"""Small building blocks of MobileNetV4: conv-BN-activation, learnable layer scale, a per-channel affine and
the channel rounding rule.

BatchNorm keeps PyTorch's defaults (eps 1e-5, momentum 0.1), not YOLO's (1e-3, 0.03): the reference
implementation and its checkpoints use them, and eps changes the outputs.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.layer_spec import round_divisible
from models.layers.conv import Conv
from models.reparam import fold_affine

CHANNEL_DIVISOR = 8  # every width-scaled channel count is a multiple of this


def round_channels(channels: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Nearest multiple of `divisor` (at least `divisor`), bumped up when rounding down loses more than 10%.

    This is the MobileNet rounding (TF models' `make_divisible`), unlike YOLO's round-up; widths of
    MobileNetV4 checkpoints follow it.
    """
    return round_divisible(channels, divisor, round_limit=0.9)


class ConvNormAct(Conv):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation: our Conv (and its BatchNorm fold) with PyTorch's
    BatchNorm defaults and the reference's padding, ((stride - 1) + (kernel_size - 1)) // 2."""

    bn_eps = 1e-5
    bn_momentum = 0.1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: nn.Module | None = None,
    ) -> None:
        padding = ((stride - 1) + (kernel_size - 1)) // 2  # equals kernel_size // 2 for the odd kernels used here
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups, act=act if act is not None else False
        )

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def scale_output(self, gamma: torch.Tensor) -> None:
        """Multiply the (already folded) output by a per-channel `gamma`; only valid without activation."""
        if not isinstance(self.act, nn.Identity) or not isinstance(self.bn, nn.Identity):
            raise RuntimeError("scale_output needs a folded ConvNormAct without activation")
        self.conv = fold_affine(self.conv, gamma.detach())


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch (CaiT), initialised to a small constant."""

    def __init__(self, channels: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


class ChannelAffine(nn.Module):
    """y = x * weight + bias per channel: what an eval-mode BatchNorm becomes when it cannot be folded into a
    neighbouring convolution (its input is zero-padded by the next conv, so a fold would be wrong at borders)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def activation(name: str) -> nn.Module:
    """The activation a variant uses throughout."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}; expected 'relu' or 'gelu'")
