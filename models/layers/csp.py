"""Residual bottlenecks and the cross-stage-partial blocks built from them (YOLOv5's C3/BottleneckCSP,
YOLOv8's C2f, YOLO11's C3k2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn as nn

from models.layer_spec import LayerBuild, LayerContext, register_layer, scaled_rule
from models.layers.conv import BN_EPS, BN_MOMENTUM, Conv
from models.reparam import batchnorm_scale_shift, fold_affine


@register_layer(channels="scaled")
class Bottleneck(nn.Module):
    """Two convs with a residual connection when the shapes allow it."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        groups: int = 1,
        kernel_sizes: tuple[int, int] = (3, 3),
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden, kernel_sizes[0], 1)
        self.cv2 = Conv(hidden, out_channels, kernel_sizes[1], 1, groups=groups)
        self.add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


@register_layer(channels="scaled", repeats_inside=True)
class BottleneckCSP(nn.Module):
    """YOLOv5's original CSP block: one branch through bottlenecks, one plain 1x1, a shared BN over both."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden, 1, 1)
        self.cv2 = nn.Conv2d(in_channels, hidden, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(hidden, hidden, 1, 1, bias=False)
        self.cv4 = Conv(2 * hidden, out_channels, 1, 1)
        self.bn: nn.Module = nn.BatchNorm2d(2 * hidden, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU(inplace=True)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, groups, (1, 3), 1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), 1))))

    def reparameterize(self) -> None:
        """Split the shared BatchNorm over the concatenation and fold each half into the conv that feeds it."""
        if isinstance(self.bn, nn.Identity):
            return
        scale, shift = batchnorm_scale_shift(self.bn)
        hidden = self.cv3.out_channels
        self.cv3 = fold_affine(self.cv3, scale[:hidden], shift[:hidden])
        self.cv2 = fold_affine(self.cv2, scale[hidden:], shift[hidden:])
        self.bn = nn.Identity()


@register_layer(channels="scaled", repeats_inside=True)
class C3(nn.Module):
    """CSP bottleneck with three convs: two 1x1 branches, bottlenecks on one, a 1x1 to merge."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
        bottleneck_kernels: tuple[int, int] = (1, 3),
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, hidden, 1, 1)
        self.cv2 = Conv(in_channels, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, groups, bottleneck_kernels, 1.0) for _ in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


@register_layer(channels="scaled", repeats_inside=True)
class C3k(C3):
    """C3 whose bottlenecks use k x k kernels on both convs (the inner block of C3k2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        groups: int = 1,
        expansion: float = 0.5,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(in_channels, out_channels, n, shortcut, groups, expansion, (kernel_size, kernel_size))


class SplitConcatBlock(nn.Module):
    """The C2f layout: split a 1x1 conv in two, chain n blocks on one half, concatenate every intermediate."""

    stride_factor = 1  # declared, so the builder need not probe the stride with a forward pass

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int,
        expansion: float,
        make_block: Callable[[int], nn.Module],
    ) -> None:
        super().__init__()
        self.c = int(out_channels * expansion)
        self.cv1 = Conv(in_channels, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, out_channels, 1)
        self.m = nn.ModuleList(make_block(self.c) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, 1))


@register_layer(channels="scaled", repeats_inside=True)
class C2f(SplitConcatBlock):
    """YOLOv8's faster CSP block with 3x3 bottlenecks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = False,
        groups: int = 1,
        expansion: float = 0.5,
    ) -> None:
        super().__init__(
            in_channels, out_channels, n, expansion, lambda c: Bottleneck(c, c, shortcut, groups, (3, 3), 1.0)
        )


def _c3k2_rule(cls: type, ctx: LayerContext) -> LayerBuild:
    """Conv-like rule, plus the YOLO11 convention that scales m/l/x always use C3k inner blocks."""
    if ctx.scaling.scale in {"m", "l", "x"} and ctx.args:
        ctx = replace(ctx, args=[ctx.args[0], True, *ctx.args[2:]])  # YAML args: [c2, c3k, e, ...]
    return _SCALED_REPEATS(cls, ctx)


_SCALED_REPEATS = scaled_rule(repeats_inside=True)


@register_layer(rule=_c3k2_rule)
class C3k2(SplitConcatBlock):
    """YOLO11's block: C2f layout whose inner blocks are bottlenecks, or C3k blocks when `c3k` is set."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        c3k: bool = False,
        expansion: float = 0.5,
        groups: int = 1,
        shortcut: bool = True,
    ) -> None:
        def make_block(c: int) -> nn.Module:
            return C3k(c, c, 2, shortcut, groups) if c3k else Bottleneck(c, c, shortcut, groups)

        super().__init__(in_channels, out_channels, n, expansion, make_block)
