"""Convolution building blocks: Conv (conv-BN-act), DWConv, Focus, and Concat."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from models.layer_spec import FeatureSpec, LayerBuild, LayerContext, instantiate, register_layer
from models.reparam import fold_batchnorm

# BatchNorm settings used by YOLOv5 and ultralytics for every conv block.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(kernel_size: int | tuple[int, int], padding: int | None = None, dilation: int = 1) -> int | list[int]:
    """Padding that keeps the spatial size for stride 1 ('same' padding)."""
    if dilation > 1:
        kernel_size = (
            dilation * (kernel_size - 1) + 1
            if isinstance(kernel_size, int)
            else [dilation * (k - 1) + 1 for k in kernel_size]
        )
    if padding is None:
        padding = kernel_size // 2 if isinstance(kernel_size, int) else [k // 2 for k in kernel_size]
    return padding


def make_activation(act: bool | nn.Module) -> nn.Module:
    """SiLU for True, identity for False, or the given module."""
    if act is True:
        return nn.SiLU(inplace=True)
    if isinstance(act, nn.Module):
        return act
    return nn.Identity()


@register_layer(channels="scaled")
class Conv(nn.Module):
    """Conv2d -> BatchNorm2d -> activation. `reparameterize()` folds the BatchNorm into the convolution.

    The BatchNorm takes `bn_eps` and `bn_momentum` (YOLO's); a subclass ported from a reference that uses
    other values (MobileNetV4's ConvNormAct) overrides them.
    """

    bn_eps: float = BN_EPS
    bn_momentum: float = BN_MOMENTUM

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            autopad(kernel_size, padding, dilation),
            groups=groups,
            dilation=dilation,
            bias=False,
        )
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=self.bn_eps, momentum=self.bn_momentum)
        self.act = make_activation(act)
        self.stride_factor = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.Identity):
            return
        self.conv = fold_batchnorm(self.conv, self.bn)
        self.bn = nn.Identity()


@register_layer(channels="scaled")
class DWConv(Conv):
    """Depth-wise convolution: groups = gcd(in, out)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            groups=math.gcd(in_channels, out_channels),
            dilation=dilation,
            act=act,
        )


@register_layer(channels="scaled")
class Focus(nn.Module):
    """Space-to-depth (each 2x2 pixel block becomes 4 channels) followed by a Conv; halves the resolution."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        act: bool | nn.Module = True,
    ) -> None:
        super().__init__()
        self.conv = Conv(in_channels * 4, out_channels, kernel_size, stride, padding, groups, act=act)
        self.stride_factor = 2 * stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(patches, 1))


@register_layer()
class Concat(nn.Module):
    """Concatenate a list of maps along channels; the builder checks that their strides agree."""

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.dimension = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.dimension)

    @classmethod
    def from_config(cls, ctx: LayerContext) -> LayerBuild:
        module = instantiate(cls, ctx.args)
        if module.dimension != 1:
            raise ValueError(f"Concat along dimension {module.dimension} is not supported; use 1 (channels)")
        strides = {spec.stride for spec in ctx.inputs if spec.stride is not None}
        if len(strides) > 1:
            shown = ", ".join(f"{spec.stride:g}" if spec.stride else "?" for spec in ctx.inputs)
            raise ValueError(f"Concat inputs have different strides ({shown}); their maps cannot be concatenated")
        channels = sum(spec.channels for spec in ctx.inputs)
        return LayerBuild(module, [FeatureSpec(channels, ctx.inputs[0].stride)], list(ctx.args))
