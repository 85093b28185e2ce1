"""MobileNetV4's convolutional blocks: the Fused Inverted Bottleneck and the Universal Inverted Bottleneck.

UIB (arXiv 2404.10518, Fig. 4) is an inverted bottleneck with two optional depth-wise convolutions: one
before the expansion ("start") and one between expansion and projection ("middle"). Its four instances:
ExtraDW (start + middle), IB (middle only), ConvNeXt-like (start only) and FFN (neither).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.backbones.mobilenetv4.layers import ConvNormAct, LayerScale, round_channels


class FusedInvertedBottleneck(nn.Module):
    """Fused IB: a k x k (strided) expansion convolution with activation, then a linear 1x1 projection.

    The hidden width is `round_channels(in_channels * expansion)`; the residual is used when the shape is kept.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: float, act: nn.Module
    ) -> None:
        super().__init__()
        hidden = round_channels(in_channels * expansion)
        self.expand = ConvNormAct(in_channels, hidden, kernel_size, stride, act=act)
        self.project = ConvNormAct(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    @property
    def out_channels(self) -> int:
        return self.project.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(x))
        return x + y if self.residual else y


class UniversalInvertedBottleneck(nn.Module):
    """UIB: [start depth-wise k_s, no activation] -> 1x1 expansion (act) -> [middle depth-wise k_m (act)]
    -> 1x1 linear projection -> [layer scale] (+ input when the shape is kept).

    A kernel size of 0 leaves that depth-wise convolution out. The stride goes to the middle depth-wise
    convolution when there is one, else to the start one.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        start_kernel: int,
        middle_kernel: int,
        stride: int,
        expansion: float,
        act: nn.Module,
        layer_scale: float | None = None,
    ) -> None:
        super().__init__()
        if stride > 1 and not (start_kernel or middle_kernel):
            raise ValueError("a strided UIB needs a start or a middle depth-wise convolution to carry the stride")
        hidden = round_channels(in_channels * expansion)
        self.start_dw = (
            ConvNormAct(in_channels, in_channels, start_kernel, 1 if middle_kernel else stride, groups=in_channels)
            if start_kernel
            else nn.Identity()
        )
        self.expand = ConvNormAct(in_channels, hidden, 1, act=act)
        self.middle_dw = (
            ConvNormAct(hidden, hidden, middle_kernel, stride, groups=hidden, act=act)
            if middle_kernel
            else nn.Identity()
        )
        self.project = ConvNormAct(hidden, out_channels, 1)
        self.layer_scale: nn.Module = (
            LayerScale(out_channels, layer_scale) if layer_scale is not None else nn.Identity()
        )
        self.residual = stride == 1 and in_channels == out_channels

    @property
    def out_channels(self) -> int:
        return self.project.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_scale(self.project(self.middle_dw(self.expand(self.start_dw(x)))))
        return x + y if self.residual else y

    def reparameterize(self) -> None:
        """Fold every BatchNorm, then the layer scale into the projection."""
        for conv in (self.start_dw, self.expand, self.middle_dw, self.project):
            if isinstance(conv, ConvNormAct):
                conv.reparameterize()
        if isinstance(self.layer_scale, LayerScale):
            self.project.scale_output(self.layer_scale.gamma)
            self.layer_scale = nn.Identity()
