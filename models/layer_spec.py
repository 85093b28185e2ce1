"""How a YAML row becomes a module: the layer registry and the rules that derive output channels and strides.

Every layer type is registered once with a *build rule*: a function that takes the row's context (input
channels and strides, repeats, args, model scaling) and returns the module plus the (channels, stride) of
each of its outputs. `parse_model` knows nothing about individual types, so adding a layer is one decorated
class.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from models.registry import Registry, UnknownNameError
from utils.values import is_int


@dataclass(frozen=True)
class FeatureSpec:
    """A feature map as the builder sees it: channel count and stride relative to the input image."""

    channels: int
    stride: float | None

    def __repr__(self) -> str:
        stride = "?" if self.stride is None else f"{self.stride:g}"
        return f"(c={self.channels}, s={stride})"


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of `divisor` that is >= x (the YOLO channel rounding)."""
    return int(math.ceil(x / divisor) * divisor)


def round_divisible(x: float, divisor: int = 8, round_limit: float = 0.0) -> int:
    """Nearest multiple of `divisor` (at least `divisor`), the rounding of TF/timm models (not YOLO's round-up),
    raised by one `divisor` when it falls below `round_limit * x` (MobileNets use 0.9: lose at most 10%)."""
    rounded = max(divisor, int(x + divisor / 2) // divisor * divisor)
    if rounded < round_limit * x:
        rounded += divisor
    return int(rounded)


@dataclass(frozen=True)
class Scaling:
    """Compound scaling of a model: depth and width multiples and the channel cap of YOLO11-style scales."""

    depth: float = 1.0
    width: float = 1.0
    max_channels: float = math.inf
    scale: str | None = None

    def channels(self, requested: int) -> int:
        return make_divisible(min(requested, self.max_channels) * self.width, 8)

    def repeats(self, n: int) -> int:
        return max(round(n * self.depth), 1) if n > 1 else n


@dataclass
class LayerContext:
    """Everything a build rule may read about one YAML row."""

    index: int
    name: str
    inputs: list[FeatureSpec]
    from_list: bool  # `from` was written as a list, so the module receives a list of tensors
    n: int  # repeats after the depth multiple
    args: list[Any]
    scaling: Scaling

    @property
    def input(self) -> FeatureSpec:
        """The single input of a layer that takes one map."""
        if self.from_list and len(self.inputs) != 1:
            raise ValueError(f"{self.name} takes one input, got {len(self.inputs)} (from a list)")
        return self.inputs[0]


@dataclass
class LayerBuild:
    """A built row: the module, the spec of each output, and the constructor args shown in the layer table."""

    module: nn.Module
    outputs: list[FeatureSpec]
    args: list[Any] = field(default_factory=list)
    multi_output: bool = False  # the module returns a list of maps that fill one slot per pyramid level


BuildRule = Callable[[type, LayerContext], LayerBuild]


@dataclass(frozen=True)
class LayerEntry:
    """A registered layer type and the rule that builds it from a YAML row."""

    name: str
    cls: type
    rule: BuildRule

    def build(self, ctx: LayerContext) -> LayerBuild:
        return self.rule(self.cls, ctx)


LAYERS: Registry[LayerEntry] = Registry("module")


def instantiate(cls: type, args: Sequence[Any], n: int = 1) -> nn.Module:
    """Construct `cls(*args)` (n times in a Sequential when n > 1); a wrong arg count names the signature."""
    try:
        inspect.signature(cls).bind(*args)
    except TypeError as e:
        raise TypeError(f"{cls.__name__}{inspect.signature(cls)} cannot take args {list(args)}: {e}") from None
    except ValueError:  # some builtins have no introspectable signature; let the call itself complain
        pass
    if n > 1:
        return nn.Sequential(*(cls(*args) for _ in range(n)))
    return cls(*args)


def spatial_stride(module: nn.Module) -> float | None:
    """Output stride of a module relative to its input, from declared metadata; None when undeclared.

    Our layers declare `stride_factor` when it is not 1; a few torch.nn layers are read from their attributes.
    """
    declared = getattr(module, "stride_factor", None)
    if declared is not None:
        return float(declared)
    if isinstance(module, nn.Sequential):
        total = 1.0
        for child in module:
            factor = spatial_stride(child)
            if factor is None:
                return None
            total *= factor
        return total
    if isinstance(module, nn.Upsample):
        if module.scale_factor is None:
            return None  # a fixed output size has no fixed stride
        scale = module.scale_factor
        scale = scale[0] if isinstance(scale, (tuple, list)) else scale
        return 1.0 / float(scale)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.Conv2d)):
        s = module.stride
        return float(s[0] if isinstance(s, (tuple, list)) else s)
    if isinstance(module, nn.ConvTranspose2d):
        return 1.0 / float(module.stride[0])
    return None


def probe_output(module: nn.Module, spec: FeatureSpec, size: int = 64) -> FeatureSpec:
    """Run one small tensor through a foreign module to learn its output channels and stride."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y = module(torch.zeros(1, spec.channels, size, size))
    finally:
        module.train(was_training)
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise ValueError(f"{type(module).__name__} does not return a 4-D feature map")
    stride = None if spec.stride is None else spec.stride * size / y.shape[-1]
    return FeatureSpec(int(y.shape[1]), stride)


def scaled_rule(repeats_inside: bool = False) -> BuildRule:
    """Rule of conv-like layers: first arg is c2, scaled by width; input channels are prepended.

    With `repeats_inside` the depth-scaled n goes into the args (C3, C2f, ...) instead of stacking copies.
    """

    def rule(cls: type, ctx: LayerContext) -> LayerBuild:
        if not ctx.args:
            raise TypeError(f"{cls.__name__} needs output channels as its first arg")
        c1, requested = ctx.input.channels, ctx.args[0]
        if not is_int(requested):
            raise TypeError(f"{cls.__name__}: output channels must be an int, got {requested!r}")
        c2 = ctx.scaling.channels(requested)
        args = [c1, c2, *ctx.args[1:]]
        n = ctx.n
        if repeats_inside:
            args.insert(2, n)
            n = 1
        module = instantiate(cls, args, n)
        return LayerBuild(module, [_follow_stride(module, ctx.input, c2)], args)

    return rule


def passthrough_rule(cls: type, ctx: LayerContext) -> LayerBuild:
    """Rule of layers that keep channels (Upsample, Dropout, activations...); strides are read or probed."""
    module = instantiate(cls, ctx.args, ctx.n)
    return LayerBuild(module, [_follow_stride(module, ctx.input, ctx.input.channels)], list(ctx.args))


def _follow_stride(module: nn.Module, spec: FeatureSpec, channels: int) -> FeatureSpec:
    factor = spatial_stride(module)
    if factor is None:
        return probe_output(module, spec)
    return FeatureSpec(channels, None if spec.stride is None else spec.stride * factor)


def _torch_nn_rule(cls: type) -> BuildRule:
    """torch.nn layers: conv layers scale like ours, BatchNorm gets its channels, others keep channels."""
    if cls in (nn.Conv2d, nn.ConvTranspose2d):
        return scaled_rule()
    if issubclass(cls, nn.modules.batchnorm._BatchNorm):

        def batchnorm_rule(cls: type, ctx: LayerContext) -> LayerBuild:
            module = instantiate(cls, [ctx.input.channels, *ctx.args], ctx.n)
            return LayerBuild(module, [ctx.input], [ctx.input.channels, *ctx.args])

        return batchnorm_rule

    return passthrough_rule  # strides of Upsample/pools are read; anything else is probed


def register_layer(
    name: str | None = None, *, rule: BuildRule | None = None, channels: str | None = None, repeats_inside: bool = False
) -> Callable[[type], type]:
    """Register a layer type for YAML configs.

    Either give a `rule`, or `channels="scaled"` (conv-like: first arg is c2) / `channels="same"`, or define a
    `from_config(cls, ctx) -> LayerBuild` classmethod on the class.
    """

    def decorator(cls: type) -> type:
        if rule is not None:
            chosen = rule
        elif channels == "scaled":
            chosen = scaled_rule(repeats_inside)
        elif channels == "same":
            chosen = passthrough_rule
        elif hasattr(cls, "from_config"):
            chosen = lambda c, ctx: c.from_config(ctx)  # noqa: E731
        else:
            raise TypeError(f"register_layer({cls.__name__}): give rule=, channels= or define from_config")
        LAYERS.add(name or cls.__name__, LayerEntry(name or cls.__name__, cls, chosen))
        return cls

    return decorator


_MODULE_NAME = re.compile(r"^(nn\.)?[A-Za-z_][A-Za-z0-9_]*$")


def resolve_layer(name: Any) -> LayerEntry:
    """Resolve a YAML module name: a registered name, or `nn.X` for a torch.nn module. Nothing is evaluated."""
    if not isinstance(name, str) or not _MODULE_NAME.match(name):
        raise ValueError(f"module name {name!r} is not a plain identifier; only registered names and nn.X are allowed")
    if name.startswith("nn."):
        attr = name[3:]
        cls = getattr(nn, attr, None)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            known = [k for k in dir(nn) if isinstance(getattr(nn, k), type) and issubclass(getattr(nn, k), nn.Module)]
            raise UnknownNameError("torch.nn module", attr, known)
        return LayerEntry(name, cls, _torch_nn_rule(cls))
    return LAYERS.get(name)
