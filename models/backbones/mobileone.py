"""MobileOne-S0..S4 (arXiv 2206.04040, table 7) as multi-output stages, numerically equal to timm's `mobileone_s*`.

Layout: a stride-2 MobileOne stem block, then four stages of depthwise/pointwise MobileOne units whose first
depthwise block has stride 2. Outputs: stem (P1/2) and the four stages (P2/4 .. P5/32), so at index 0 a
backbone fills slots 0-4. `width` multiplies every width (rounded up to a multiple of 8); `weights` takes a
local timm checkpoint (classifier or features-only, training or re-parameterized form).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from models.backbones.stage import MultiOutputStage, check_width
from models.backbones.weights import rename_keys, resolve_weights_argument
from models.layer_spec import FeatureSpec, make_divisible, register_layer
from models.layers.mobileone import MobileOne, MobileOneBlock
from models.reparam import reparameterize_model

BASE_WIDTHS = (64, 128, 256, 512)  # paper table 7, before the per-stage width multipliers
DEPTHS = (2, 8, 10, 1)  # units per stage (each unit is a depthwise block and a pointwise block)


@dataclass(frozen=True)
class MobileOneVariant:
    """One row of the paper's table 7."""

    width_multipliers: tuple[float, float, float, float]
    branches: int  # k, over-parameterisation factor
    se_units: tuple[int, int, int, int] = (0, 0, 0, 0)  # trailing units per stage with squeeze-excitation
    stem_channels: int = 64


VARIANTS = {
    "s0": MobileOneVariant((0.75, 1.0, 1.0, 2.0), branches=4, stem_channels=48),
    "s1": MobileOneVariant((1.5, 1.5, 2.0, 2.5), branches=1),
    "s2": MobileOneVariant((1.5, 2.0, 2.5, 4.0), branches=1),
    "s3": MobileOneVariant((2.0, 2.5, 3.0, 4.0), branches=1),
    "s4": MobileOneVariant((3.0, 3.5, 3.5, 4.0), branches=1, se_units=(0, 0, 5, 1)),
}

# timm names -> ours (applied in order). Features-only checkpoints flatten `stages.i` to `stages_i`.
_TIMM_RULES = [
    (r"^stages_(\d+)\.", r"stages.\1."),
    (r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2."),
    (r"\.conv_kxk\.", ".conv_branches."),
    (r"\.conv_scale\.", ".scale_branch."),
    (r"\.identity\.", ".identity_branch."),
    (r"\.attn\.fc1\.", ".se.reduce."),
    (r"\.attn\.fc2\.", ".se.expand."),
    (r"\.reparam_conv\.", ".fused_conv."),
]
_TIMM_DROP = r"^(head|final_conv)\."  # classifier (MobileOne has no final conv; dropped if ever present)


class MobileOneBackbone(MultiOutputStage):
    """A MobileOne network without its classifier, returning the stem and the four stage outputs.

    Subclasses (the YAML names MobileOneS0..S4) set `variant`. YAML args: `[width, weights]`.

    Args:
        in_channels: image channels.
        width: multiplier on every width (1.0 = the paper's network).
        weights: False/None for random init, or a local checkpoint file (timm or our names).
        fused: build every block directly in re-parameterized form (to load a deploy checkpoint as it is).
    """

    variant: str | None = None
    timm_name: str | None = None  # the reference model whose checkpoints convert_state_dict maps

    def __init__(
        self,
        in_channels: int = 3,
        width: float = 1.0,
        weights: str | bool | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__()
        variant = self.variant
        if variant not in VARIANTS:
            raise TypeError(f"{type(self).__name__}: use one of MobileOneS0..S4 (unknown variant {variant!r})")
        width = check_width(type(self).__name__, width, high=None)
        self.weights_file = resolve_weights_argument(weights, type(self).__name__)  # a bad path fails before building
        spec = VARIANTS[variant]
        stem_channels = make_divisible(spec.stem_channels * width, 8)
        widths = [make_divisible(c * m * width, 8) for c, m in zip(BASE_WIDTHS, spec.width_multipliers)]

        self.stem = MobileOneBlock(in_channels, stem_channels, 3, 2, branches=1, fused=fused)
        stages, channels = [], stem_channels
        for depth, out_channels, se_units in zip(DEPTHS, widths, spec.se_units):
            stages.append(MobileOne(channels, out_channels, depth, spec.branches, 2, se_units, fused))
            channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.feature_info = [FeatureSpec(c, 2 ** (i + 1)) for i, c in enumerate([stem_channels, *widths])]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = [x]
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a timm `mobileone_s*` state dict (full or features-only, training or deploy form) to our names."""
        return rename_keys(state_dict, _TIMM_RULES, drop=_TIMM_DROP)

    def prepare_for_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Re-parameterize this stage first when the checkpoint holds fused (deploy) convolutions; refuse
        training-form (branch) weights once the stage is fused, as they no longer have a place to go."""
        blocks = [m for m in self.modules() if isinstance(m, MobileOneBlock)]
        if any(".fused_conv." in k for k in state_dict) and any(not b.is_fused for b in blocks):
            reparameterize_model(self)
        elif any(".conv_branches." in k for k in state_dict) and any(b.is_fused for b in blocks):
            raise ValueError(
                f"training-form (multi-branch) weights cannot load into a fused {type(self).__name__}: "
                "load them before fusing (DetectionModel(..., fused=True) loads YAML weights before it fuses)"
            )


@register_layer()
class MobileOneS0(MobileOneBackbone):
    """MobileOne-S0: widths 48/48/128/256/1024, k=4 branches; YAML `[-1, 1, MobileOneS0, [width, weights]]`."""

    variant = "s0"
    timm_name = "mobileone_s0"


@register_layer()
class MobileOneS1(MobileOneBackbone):
    """MobileOne-S1: widths 64/96/192/512/1280, k=1."""

    variant = "s1"
    timm_name = "mobileone_s1"


@register_layer()
class MobileOneS2(MobileOneBackbone):
    """MobileOne-S2: widths 64/96/256/640/2048, k=1."""

    variant = "s2"
    timm_name = "mobileone_s2"


@register_layer()
class MobileOneS3(MobileOneBackbone):
    """MobileOne-S3: widths 64/128/320/768/2048, k=1."""

    variant = "s3"
    timm_name = "mobileone_s3"


@register_layer()
class MobileOneS4(MobileOneBackbone):
    """MobileOne-S4: widths 64/192/448/896/2048, k=1, squeeze-excitation in the last 5 + 1 units."""

    variant = "s4"
    timm_name = "mobileone_s4"
