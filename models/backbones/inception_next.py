"""InceptionNeXt (arXiv 2303.16900) as multi-output stages, numerically equal to timm's `inception_next_*`.

A MetaNeXt network: a 4x4/4 patchify stem (conv + BN), then four stages (stages 2-4 open with BN + a 2x2/2
conv) of MetaNeXt blocks: x + gamma * MLP(BN(InceptionDWConv(x))). The Inception depthwise conv leaves part of
the channels untouched and runs a 3x3, a 1xk and a kx1 depthwise conv on three equal channel groups.

Outputs: the four stages at strides 4, 8, 16, 32, so at index 0 a backbone fills slots 0-4 with slot 0 (P1)
empty. YAML names `inceptionnext_atto|tiny|small|base`, args `[weights, width]` as users write
`[-1, 1, inceptionnext_tiny, [False]]`.

Fusing: every BatchNorm here feeds a convolution that reads no zero padding (stem: conv -> BN; downsample:
BN -> 2x2/2 conv; block: BN -> 1x1 fc1), so each folds exactly; the layer scale gamma folds into fc2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from models.backbones.stage import MultiOutputStage, check_width
from models.backbones.weights import rename_keys, resolve_weights_argument
from models.layer_spec import FeatureSpec, make_divisible, register_layer
from models.reparam import fold_affine, fold_batchnorm, fold_preceding_batchnorm


class InceptionDepthwiseConv(nn.Module):
    """Inception depthwise conv: identity on the first channels, square / 1xk / kx1 depthwise convs on the rest.

    Each conv branch takes `int(channels * branch_ratio)` channels; the rest pass through unchanged.
    """

    def __init__(
        self, channels: int, square_kernel_size: int = 3, band_kernel_size: int = 11, branch_ratio: float = 0.125
    ) -> None:
        super().__init__()
        branch = int(channels * branch_ratio)
        if branch < 1:
            raise ValueError(f"InceptionDepthwiseConv: {channels} channels x {branch_ratio} leaves no branch channels")
        square_pad, band_pad = square_kernel_size // 2, band_kernel_size // 2
        self.square = nn.Conv2d(branch, branch, square_kernel_size, padding=square_pad, groups=branch)
        self.band_w = nn.Conv2d(branch, branch, (1, band_kernel_size), padding=(0, band_pad), groups=branch)
        self.band_h = nn.Conv2d(branch, branch, (band_kernel_size, 1), padding=(band_pad, 0), groups=branch)
        self.split_sizes = (channels - 3 * branch, branch, branch, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity, square, band_w, band_h = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((identity, self.square(square), self.band_w(band_w), self.band_h(band_h)), dim=1)


class ConvMlp(nn.Module):
    """Pointwise MLP on a feature map: 1x1 conv -> GELU -> 1x1 conv."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MetaNeXtBlock(nn.Module):
    """x + gamma * MLP(BN(InceptionDepthwiseConv(x))); `reparameterize()` folds BN into fc1 and gamma into fc2."""

    def __init__(
        self,
        channels: int,
        mlp_ratio: float = 4.0,
        band_kernel_size: int = 11,
        branch_ratio: float = 0.125,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        self.token_mixer = InceptionDepthwiseConv(channels, 3, band_kernel_size, branch_ratio)
        self.norm: nn.Module = nn.BatchNorm2d(channels)
        self.mlp = ConvMlp(channels, int(mlp_ratio * channels))
        self.gamma: nn.Parameter | None = nn.Parameter(torch.full((channels,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.token_mixer(x)))
        if self.gamma is not None:
            y = y * self.gamma.reshape(1, -1, 1, 1)
        return x + y

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.mlp.fc1 = fold_preceding_batchnorm(self.norm, self.mlp.fc1)  # 1x1 conv: no padding, exact
            self.norm = nn.Identity()
        if self.gamma is not None:
            gamma = self.gamma.detach()
            self.mlp.fc2 = fold_affine(self.mlp.fc2, gamma)
            self.gamma = None


class PatchStem(nn.Module):
    """4x4 stride-4 conv (with bias) then BatchNorm; `reparameterize()` folds the BN into the conv."""

    def __init__(self, in_channels: int, out_channels: int, patch: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, patch, patch)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fold_batchnorm(self.conv, self.bn)
            self.bn = nn.Identity()


class Downsample(nn.Module):
    """BatchNorm then a 2x2 stride-2 conv (with bias); `reparameterize()` folds the BN into the conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, stride, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))

    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.BatchNorm2d):
            self.conv = fold_preceding_batchnorm(self.norm, self.conv)  # kernel == stride, no padding: exact
            self.norm = nn.Identity()


class MetaNeXtStage(nn.Module):
    """Optional downsampling (BN + 2x2/2 conv) followed by `depth` MetaNeXt blocks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        downsample: bool,
        mlp_ratio: float,
        band_kernel_size: int,
        branch_ratio: float,
        layer_scale: float = 1e-6,
    ) -> None:
        super().__init__()
        self.downsample = Downsample(in_channels, out_channels) if downsample else nn.Identity()
        self.blocks = nn.Sequential(
            *(MetaNeXtBlock(out_channels, mlp_ratio, band_kernel_size, branch_ratio, layer_scale) for _ in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


@dataclass(frozen=True)
class InceptionNeXtVariant:
    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    band_kernel_size: int = 11
    branch_ratio: float = 0.125
    mlp_ratios: tuple[float, float, float, float] = (4, 4, 4, 3)


VARIANTS = {
    "atto": InceptionNeXtVariant((2, 2, 6, 2), (40, 80, 160, 320), band_kernel_size=9, branch_ratio=0.25),
    "tiny": InceptionNeXtVariant((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": InceptionNeXtVariant((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": InceptionNeXtVariant((3, 3, 27, 3), (128, 256, 512, 1024)),
}

# timm names -> ours (applied in order). Features-only checkpoints flatten `stem.0`/`stages.i` to `stem_0`/`stages_i`.
_TIMM_RULES = [
    (r"^stem_(\d+)\.", r"stem.\1."),
    (r"^stages_(\d+)\.", r"stages.\1."),
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.bn."),
    (r"\.downsample\.0\.", ".downsample.norm."),
    (r"\.downsample\.1\.", ".downsample.conv."),
    (r"\.token_mixer\.dwconv_hw\.", ".token_mixer.square."),
    (r"\.token_mixer\.dwconv_w\.", ".token_mixer.band_w."),
    (r"\.token_mixer\.dwconv_h\.", ".token_mixer.band_h."),
]
_TIMM_DROP = r"^head\."  # the MLP classifier head


class InceptionNeXt(MultiOutputStage):
    """An InceptionNeXt network without its classifier head, returning the four stage outputs (strides 4..32).

    Subclasses (the YAML names inceptionnext_atto/tiny/small/base) set `variant`.

    Args:
        in_channels: image channels.
        weights: False/None for random init, or a local checkpoint file (timm or our names); True is refused.
        width: multiplier on every stage width (rounded up to a multiple of 8; 1.0 = the paper's network).
    """

    variant: str | None = None
    timm_name: str | None = None  # the reference model whose checkpoints convert_state_dict maps

    def __init__(self, in_channels: int = 3, weights: str | bool | None = None, width: float = 1.0) -> None:
        super().__init__()
        if self.variant not in VARIANTS:
            raise TypeError(f"{type(self).__name__}: use one of inceptionnext_atto/tiny/small/base")
        width = check_width(type(self).__name__, width, high=None)
        self.weights_file = resolve_weights_argument(weights, type(self).__name__)  # a bad path fails before building
        spec = VARIANTS[self.variant]
        widths = [make_divisible(c * width, 8) for c in spec.widths]

        self.stem = PatchStem(in_channels, widths[0])
        stages, channels = [], widths[0]
        for i, (depth, out_channels, mlp_ratio) in enumerate(zip(spec.depths, widths, spec.mlp_ratios)):
            stages.append(
                MetaNeXtStage(channels, out_channels, depth, i > 0, mlp_ratio, spec.band_kernel_size, spec.branch_ratio)
            )
            channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.feature_info = [FeatureSpec(c, 2 ** (i + 2)) for i, c in enumerate(widths)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a timm `inception_next_*` state dict (full or features-only) to our names; the head is dropped."""
        return rename_keys(state_dict, _TIMM_RULES, drop=_TIMM_DROP)

    def prepare_for_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Refuse unfused weights (BatchNorms, layer scales) once this stage is fused: they have no place left."""
        fused = any(isinstance(b, MetaNeXtBlock) and b.gamma is None for b in self.modules())
        if fused and any(k.endswith(".gamma") or ".norm." in k for k in state_dict):
            raise ValueError(
                f"unfused weights cannot load into a fused {type(self).__name__}: load them before fusing "
                "(DetectionModel(..., fused=True) loads YAML weights before it fuses)"
            )


@register_layer("inceptionnext_atto")
class InceptionNeXtAtto(InceptionNeXt):
    """InceptionNeXt-A: widths 40/80/160/320, depths 2/2/6/2, band kernel 9, branch ratio 1/4."""

    variant = "atto"
    timm_name = "inception_next_atto"


@register_layer("inceptionnext_tiny")
class InceptionNeXtTiny(InceptionNeXt):
    """InceptionNeXt-T: widths 96/192/384/768, depths 3/3/9/3."""

    variant = "tiny"
    timm_name = "inception_next_tiny"


@register_layer("inceptionnext_small")
class InceptionNeXtSmall(InceptionNeXt):
    """InceptionNeXt-S: widths 96/192/384/768, depths 3/3/27/3."""

    variant = "small"
    timm_name = "inception_next_small"


@register_layer("inceptionnext_base")
class InceptionNeXtBase(InceptionNeXt):
    """InceptionNeXt-B: widths 128/256/512/1024, depths 3/3/27/3."""

    variant = "base"
    timm_name = "inception_next_base"
