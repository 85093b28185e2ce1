"""The multi-output stage protocol: a module (typically a whole backbone) that returns several maps.

A stage declares `feature_info`, one FeatureSpec(channels, stride) per output with the stride relative to
its input, ordered from fine to coarse, before any forward pass. In a YAML layer list it fills consecutive
slots, one per pyramid level P1, P2, ... (P5 at least); a level it does not produce is an empty slot, so
`[-1, 1, MobileNetV4ConvSmall, [0.75]]` at index 0 occupies indices 0-4 and the next row is index 5.

A stage that takes a `weights` argument records the checkpoint file as `weights_file` (checked by the
constructor, so a bad path fails before anything is built); the build rule loads it, once, into the built
stage. Built from Python rather than a YAML row, a stage is left at its initial weights until
`load_stage_weights(stage, stage.weights_file)` is called.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from models.backbones.weights import load_stage_weights
from models.layer_spec import FeatureSpec, LayerBuild, LayerContext, instantiate
from utils.values import is_number


class MultiOutputStage(nn.Module):
    """Base class of multi-output stages. Constructors take `in_channels` first, then the YAML args."""

    feature_info: list[FeatureSpec]
    weights_file: Path | None = None  # a checkpoint for the build rule to load (the YAML `weights` argument)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def out_channels(self) -> list[int]:
        return [f.channels for f in self.feature_info]

    @property
    def out_strides(self) -> list[float]:
        return [float(f.stride) for f in self.feature_info]

    @classmethod
    def from_config(cls, ctx: LayerContext) -> LayerBuild:
        args = [ctx.input.channels, *ctx.args]
        module = instantiate(cls, args)
        if module.weights_file is not None:
            load_stage_weights(module, module.weights_file)
        return LayerBuild(module, stage_outputs(module.feature_info, ctx.input), args, multi_output=True)


def stage_outputs(feature_info: list[FeatureSpec], input_spec: FeatureSpec) -> list[FeatureSpec]:
    """Absolute output specs of a stage from its declared (relative) feature_info; checks the declaration."""
    if not feature_info:
        raise ValueError("a multi-output stage must declare at least one output in feature_info")
    strides = [f.stride for f in feature_info]
    if any(s is None or s <= 0 for s in strides) or strides != sorted(set(strides)):
        raise ValueError(f"stage outputs must have distinct strides in increasing order, got {strides}")
    base = input_spec.stride if input_spec.stride is not None else 1.0
    return [FeatureSpec(int(f.channels), base * f.stride) for f in feature_info]


MIN_WIDTH = 0.25  # below this, rounding channels up to multiples of 8 stops scaling the network


def check_width(owner: str, width: object, low: float = MIN_WIDTH, high: float | None = 1.5) -> float:
    """Validate a backbone width factor; the message names the argument, the value and the supported range."""
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if not is_number(width) or not math.isfinite(width):
        raise ValueError(f"{owner}: width must be a number {allowed}, got {width!r}")
    if width < low:
        raise ValueError(
            f"{owner}: width={width} is outside the supported range {allowed}: under {low} the rounding of "
            "channels to multiples of 8 stops scaling the network (zero or negative widths have no meaning)"
        )
    if high is not None and width > high:
        raise ValueError(f"{owner}: width={width} is above the supported range {allowed}")
    return float(width)
