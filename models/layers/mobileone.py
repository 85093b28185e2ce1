"""MobileOne (arXiv 2206.04040): an over-parameterised block that re-parameterizes into one convolution.

At training time a MobileOneBlock sums `branches` k x k conv-BN branches, a 1x1 conv-BN "scale" branch (when
k > 1) and a BatchNorm identity branch (when input and output shapes agree), then applies optional
squeeze-excitation and ReLU. All branches are linear in the input, so `reparameterize()` folds them into one
k x k convolution with bias. A block can also be built directly in that fused form (`fused=True`, apple's
`inference_mode`), so a re-parameterized (deploy) checkpoint loads without the training graph.

`MobileOne` is the YAML layer `[-1, n, MobileOne, [c2, k, stride]]`: n units of a depthwise 3x3 block then a
pointwise 1x1 block; the first unit maps c1 -> c2 with the stride, the others c2 -> c2.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.layer_spec import register_layer
from models.layers.squeeze_excite import SqueezeExcite
from models.reparam import batchnorm_scale_shift


class ConvBatchNorm(nn.Module):
    """Conv2d without bias followed by BatchNorm (torch's default eps/momentum, as the reference uses)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the single conv equal to this conv-BN pair in eval mode."""
        scale, shift = batchnorm_scale_shift(self.bn)
        return self.conv.weight * scale.reshape(-1, 1, 1, 1), shift


class MobileOneBlock(nn.Module):
    """One MobileOne block: k conv-BN branches + 1x1 scale branch + BN identity, summed, then [SE] and ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size of the main branches (3 for depthwise blocks, 1 for pointwise blocks).
        stride: stride of every branch.
        groups: conv groups (in_channels for a depthwise block).
        branches: number k of over-parameterised k x k conv-BN branches.
        use_se: apply squeeze-excitation before the ReLU (MobileOne-S4).
        fused: build the re-parameterized single-conv form directly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        branches: int = 1,
        use_se: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"MobileOneBlock: kernel_size must be odd, got {kernel_size}")
        if branches < 1:
            raise ValueError(f"MobileOneBlock: needs at least one conv branch, got branches={branches}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.stride_factor = stride
        self.fused_conv: nn.Conv2d | None = None
        self.conv_branches: nn.ModuleList | None = None
        self.scale_branch: ConvBatchNorm | None = None
        self.identity_branch: nn.BatchNorm2d | None = None
        if fused:
            self.fused_conv = self._make_fused_conv()
        else:
            self.conv_branches = nn.ModuleList(
                ConvBatchNorm(in_channels, out_channels, kernel_size, stride, groups) for _ in range(branches)
            )
            if kernel_size > 1:
                self.scale_branch = ConvBatchNorm(in_channels, out_channels, 1, stride, groups)
            if in_channels == out_channels and stride == 1:
                self.identity_branch = nn.BatchNorm2d(out_channels)
            self._scale_branch_init()
        self.se = SqueezeExcite(out_channels) if use_se else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    @torch.no_grad()
    def _scale_branch_init(self) -> None:
        """Scale each conv branch's default init by 1/sqrt(number of conv branches).

        The branches add up to the fused kernel; scaled so, that sum starts with the variance of one
        default-initialised conv whatever k is. Otherwise an untrained k=4 network (MobileOne-S0) grows its
        activations ~1e5-fold over its 42 blocks in eval mode, which makes fuse and export checks on untrained
        models numerically meaningless. In training mode each branch's BatchNorm normalises its conv's output, so
        the forward pass does not depend on this scale (the effective learning rate of those weights does, as it
        does on any init scale).
        """
        convs = [branch.conv for branch in self.conv_branches]
        if self.scale_branch is not None:
            convs.append(self.scale_branch.conv)
        for conv in convs:
            conv.weight.mul_(len(convs) ** -0.5)

    def _make_fused_conv(self) -> nn.Conv2d:
        return nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.kernel_size // 2,
            groups=self.groups,
            bias=True,
        )

    @property
    def is_fused(self) -> bool:
        return self.fused_conv is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_conv is not None:
            y = self.fused_conv(x)
        else:
            y = sum(branch(x) for branch in self.conv_branches)
            if self.scale_branch is not None:
                y = y + self.scale_branch(x)
            if self.identity_branch is not None:
                y = y + self.identity_branch(x)
        return self.act(self.se(y))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every branch (BN included) into one k x k conv with bias and delete the branches; idempotent."""
        if self.fused_conv is not None:
            return
        weight, bias = 0.0, 0.0
        for branch in self.conv_branches:
            w, b = branch.folded()
            weight, bias = weight + w, bias + b
        pad = self.kernel_size // 2
        if self.scale_branch is not None:
            w, b = self.scale_branch.folded()
            weight, bias = weight + F.pad(w, [pad, pad, pad, pad]), bias + b  # 1x1 sits at the kernel centre
        if self.identity_branch is not None:
            scale, shift = batchnorm_scale_shift(self.identity_branch)
            weight, bias = weight + self._identity_kernel(weight) * scale.reshape(-1, 1, 1, 1), bias + shift
        reference = self.conv_branches[0].conv.weight
        fused = self._make_fused_conv().to(device=reference.device, dtype=reference.dtype)
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        fused.requires_grad_(reference.requires_grad)
        self.fused_conv = fused
        self.conv_branches = self.scale_branch = self.identity_branch = None

    def _identity_kernel(self, like: torch.Tensor) -> torch.Tensor:
        """The k x k (grouped) kernel of the identity map: 1 at the centre tap of each channel's own input."""
        kernel = torch.zeros_like(like)
        per_group = self.in_channels // self.groups
        centre = self.kernel_size // 2
        channels = torch.arange(self.out_channels, device=like.device)
        kernel[channels, channels % per_group, centre, centre] = 1.0
        return kernel


def mobileone_unit(
    in_channels: int, out_channels: int, stride: int, branches: int, use_se: bool, fused: bool = False
) -> list[MobileOneBlock]:
    """A MobileNetV1-style unit in MobileOne form: depthwise 3x3 block (with the stride), pointwise 1x1 block."""
    return [
        MobileOneBlock(in_channels, in_channels, 3, stride, in_channels, branches, use_se, fused),
        MobileOneBlock(in_channels, out_channels, 1, 1, 1, branches, use_se, fused),
    ]


@register_layer(channels="scaled", repeats_inside=True)
class MobileOne(nn.Module):
    """n MobileOne units (depthwise then pointwise block); YAML `[-1, n, MobileOne, [c2, k, stride, se_units]]`.

    Args:
        in_channels: input channels (c1).
        out_channels: output channels (c2, width-scaled by the builder).
        n: number of units (depth-scaled by the builder).
        branches: k, the number of over-parameterised conv branches per block.
        stride: stride of the first unit's depthwise block.
        se_units: how many of the last units use squeeze-excitation (MobileOne-S4 style).
        fused: build every block directly in re-parameterized form.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        branches: int = 1,
        stride: int = 1,
        se_units: int = 0,
        fused: bool = False,
    ) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"MobileOne: n must be >= 1, got {n}")
        blocks: list[MobileOneBlock] = []
        channels = in_channels
        for i in range(n):
            unit_stride, use_se = (stride if i == 0 else 1), i >= n - se_units
            blocks += mobileone_unit(channels, out_channels, unit_stride, branches, use_se, fused)
            channels = out_channels
        # flat depthwise/pointwise sequence, indexed like the reference's stages (block 2i, 2i+1 = unit i)
        self.blocks = nn.Sequential(*blocks)
        self.stride_factor = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)
