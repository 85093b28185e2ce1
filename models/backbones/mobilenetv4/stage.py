"""MobileNetV4 backbones as multi-output stages: `[-1, 1, MobileNetV4ConvSmall, [0.75]]` fills P1..P5."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.backbones.mobilenetv4 import specs
from models.backbones.mobilenetv4.attention import MobileMQABlock
from models.backbones.mobilenetv4.blocks import FusedInvertedBottleneck, UniversalInvertedBottleneck
from models.backbones.mobilenetv4.convert import timm_to_ours
from models.backbones.mobilenetv4.layers import ConvNormAct, activation, round_channels
from models.backbones.stage import MultiOutputStage, check_width
from models.backbones.weights import resolve_weights_argument
from models.layer_spec import FeatureSpec, register_layer


class MobileNetV4(MultiOutputStage):
    """A MobileNetV4 variant (set by subclasses) returning the stem and stage outputs at strides 2..32.

    `width` scales every block's output channels (MobileNet rounding to multiples of 8); the stem keeps its
    width below 1.0, as in the reference. `weights` is None/False (random init) or a local checkpoint path:
    ours, or a timm `mobilenetv4_*` checkpoint (features-only or full classifier; the head is dropped).
    """

    architecture: specs.Architecture

    def __init__(self, in_channels: int, width: float = 1.0, weights: str | Path | bool | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        width = check_width(name, width)
        self.weights_file = resolve_weights_argument(weights, name)  # a bad path fails before building
        arch = self.architecture
        self.width = width

        def scaled(channels: int) -> int:
            return round_channels(channels * width)

        stem = arch.stem if width < 1.0 else scaled(arch.stem)
        self.stem = ConvNormAct(in_channels, stem, 3, 2, act=activation(arch.act))
        stages, channels = [], stem
        for stage_spec in arch.stages:
            blocks = []
            for spec in stage_spec:
                block = _build_block(spec, channels, scaled(spec.out_channels), arch)
                blocks.append(block)
                channels = block.out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)

        # Declared from the modules just built, so channels never disagree with the weights.
        level_channels = [stem] + [self.stages[i][-1].out_channels for i in specs.OUTPUT_STAGES]
        self.feature_info = [FeatureSpec(c, 2 ** (level + 1)) for level, c in enumerate(level_channels)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = [x]
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in specs.OUTPUT_STAGES:
                outputs.append(x)
        return outputs

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a timm `mobilenetv4_*` state dict (features-only or full classifier) onto this stage's keys.

        A state dict already in our layout is returned as it is; either way every key of the stage must be
        there and no other (ValueError otherwise), so a checkpoint loads completely or not at all.
        """
        ours = set(self.state_dict())
        if not ours.issubset(state_dict):  # not our own layout: it must be timm's
            return timm_to_ours(self, state_dict)
        extra = sorted(set(state_dict) - ours)
        if extra:
            raise ValueError(f"{type(self).__name__}: {len(extra)} checkpoint keys are not in this stage: {extra[:6]}")
        return dict(state_dict)


def _build_block(spec: specs.BlockSpec, in_channels: int, out_channels: int, arch: specs.Architecture) -> nn.Module:
    act = activation(arch.act)
    if isinstance(spec, specs.ConvBlock):
        return ConvNormAct(in_channels, out_channels, spec.kernel_size, spec.stride, act=act)
    if isinstance(spec, specs.FusedIB):
        return FusedInvertedBottleneck(in_channels, out_channels, spec.kernel_size, spec.stride, spec.expansion, act)
    if isinstance(spec, specs.UIB):
        return UniversalInvertedBottleneck(
            in_channels,
            out_channels,
            spec.start_kernel,
            spec.middle_kernel,
            spec.stride,
            spec.expansion,
            act,
            arch.layer_scale,
        )
    if isinstance(spec, specs.MQA):
        return MobileMQABlock(in_channels, out_channels, spec.heads, spec.key_dim, spec.kv_stride, arch.layer_scale)
    raise TypeError(f"unknown MobileNetV4 block spec {spec!r}")


@register_layer()
class MobileNetV4ConvSmall(MobileNetV4):
    """MNv4-Conv-S: plain convs in the first stages, UIBs after; P1..P5 channels 32, 32, 64, 96, 960."""

    architecture = specs.CONV_SMALL


@register_layer()
class MobileNetV4ConvMedium(MobileNetV4):
    """MNv4-Conv-M: P1..P5 channels 32, 48, 80, 160, 960."""

    architecture = specs.CONV_MEDIUM


@register_layer()
class MobileNetV4ConvLarge(MobileNetV4):
    """MNv4-Conv-L: P1..P5 channels 24, 48, 96, 192, 960."""

    architecture = specs.CONV_LARGE


@register_layer()
class MobileNetV4HybridMedium(MobileNetV4):
    """MNv4-Hybrid-M: Conv-M-like with Mobile MQA blocks in the last two stages; P1..P5 32, 48, 80, 160, 960."""

    architecture = specs.HYBRID_MEDIUM


@register_layer()
class MobileNetV4HybridLarge(MobileNetV4):
    """MNv4-Hybrid-L: GELU, Mobile MQA in the last two stages; P1..P5 channels 24, 48, 96, 192, 960."""

    architecture = specs.HYBRID_LARGE
