"""The five MobileNetV4 architectures (arXiv 2404.10518, appendix tables), block by block.

Each variant is a stem and five stages; the first four stages each start with a stride-2 block, the last is
the 1x1 conv to 960 channels. Channels are for width 1.0. The layouts agree with timm's `mobilenetv4_*`
definitions, the numerical reference of the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvBlock:
    """Plain conv-BN-activation (the Conv-S stem stages and the final 1x1 conv)."""

    out_channels: int
    kernel_size: int
    stride: int = 1


@dataclass(frozen=True)
class FusedIB:
    """Fused inverted bottleneck: k x k expansion, 1x1 projection."""

    out_channels: int
    kernel_size: int
    expansion: float
    stride: int = 1


@dataclass(frozen=True)
class UIB:
    """Universal inverted bottleneck; a kernel of 0 leaves that depth-wise conv out."""

    out_channels: int
    start_kernel: int
    middle_kernel: int
    expansion: float
    stride: int = 1


@dataclass(frozen=True)
class MQA:
    """Mobile multi-query attention block (keys/values downsampled by kv_stride)."""

    out_channels: int
    heads: int
    key_dim: int
    kv_stride: int = 1


BlockSpec = ConvBlock | FusedIB | UIB | MQA


@dataclass(frozen=True)
class Architecture:
    """A MobileNetV4 variant: stem width, activation, layer-scale init (hybrids only) and its five stages."""

    stem: int
    act: str
    layer_scale: float | None
    stages: tuple[tuple[BlockSpec, ...], ...]


def _stage(*parts: BlockSpec | list[BlockSpec]) -> tuple[BlockSpec, ...]:
    blocks: list[BlockSpec] = []
    for part in parts:
        blocks.extend(part if isinstance(part, list) else [part])
    return tuple(blocks)


HEAD = _stage(ConvBlock(960, 1))  # stage 4: the 1x1 conv whose output is P5

CONV_SMALL = Architecture(
    stem=32,
    act="relu",
    layer_scale=None,
    stages=(
        _stage(ConvBlock(32, 3, 2), ConvBlock(32, 1)),
        _stage(ConvBlock(96, 3, 2), ConvBlock(64, 1)),
        _stage(UIB(96, 5, 5, 3, 2), [UIB(96, 0, 3, 2)] * 4, UIB(96, 3, 0, 4)),
        _stage(UIB(128, 3, 3, 6, 2), UIB(128, 5, 5, 4), UIB(128, 0, 5, 4), UIB(128, 0, 5, 3), [UIB(128, 0, 3, 4)] * 2),
        HEAD,
    ),
)

CONV_MEDIUM = Architecture(
    stem=32,
    act="relu",
    layer_scale=None,
    stages=(
        _stage(FusedIB(48, 3, 4, 2)),
        _stage(UIB(80, 3, 5, 4, 2), UIB(80, 3, 3, 2)),
        _stage(
            UIB(160, 3, 5, 6, 2),
            [UIB(160, 3, 3, 4)] * 2,
            UIB(160, 3, 5, 4),
            UIB(160, 3, 3, 4),
            UIB(160, 3, 0, 4),
            UIB(160, 0, 0, 2),
            UIB(160, 3, 0, 4),
        ),
        _stage(
            UIB(256, 5, 5, 6, 2),
            UIB(256, 5, 5, 4),
            [UIB(256, 3, 5, 4)] * 2,
            UIB(256, 0, 0, 4),
            UIB(256, 3, 0, 4),
            UIB(256, 3, 5, 2),
            UIB(256, 5, 5, 4),
            [UIB(256, 0, 0, 4)] * 2,
            UIB(256, 5, 0, 2),
        ),
        HEAD,
    ),
)

CONV_LARGE = Architecture(
    stem=24,
    act="relu",
    layer_scale=None,
    stages=(
        _stage(FusedIB(48, 3, 4, 2)),
        _stage(UIB(96, 3, 5, 4, 2), UIB(96, 3, 3, 4)),
        _stage(
            UIB(192, 3, 5, 4, 2), [UIB(192, 3, 3, 4)] * 3, UIB(192, 3, 5, 4), [UIB(192, 5, 3, 4)] * 5, UIB(192, 3, 0, 4)
        ),
        _stage(
            UIB(512, 5, 5, 4, 2),
            [UIB(512, 5, 5, 4)] * 3,
            UIB(512, 5, 0, 4),
            UIB(512, 5, 3, 4),
            [UIB(512, 5, 0, 4)] * 2,
            UIB(512, 5, 3, 4),
            UIB(512, 5, 5, 4),
            [UIB(512, 5, 0, 4)] * 3,
        ),
        HEAD,
    ),
)

_MQA_M16 = MQA(160, heads=4, key_dim=64, kv_stride=2)  # at stride 16 keys/values are downsampled once more
_MQA_M32 = MQA(256, heads=4, key_dim=64)

HYBRID_MEDIUM = Architecture(
    stem=32,
    act="relu",
    layer_scale=1e-5,
    stages=(
        _stage(FusedIB(48, 3, 4, 2)),
        _stage(UIB(80, 3, 5, 4, 2), UIB(80, 3, 3, 2)),
        _stage(
            UIB(160, 3, 5, 6, 2),
            UIB(160, 0, 0, 2),
            UIB(160, 3, 3, 4),
            UIB(160, 3, 5, 4),
            _MQA_M16,
            UIB(160, 3, 3, 4),
            _MQA_M16,
            UIB(160, 3, 0, 4),
            _MQA_M16,
            UIB(160, 3, 3, 4),
            _MQA_M16,
            UIB(160, 3, 0, 4),
        ),
        _stage(
            UIB(256, 5, 5, 6, 2),
            UIB(256, 5, 5, 4),
            [UIB(256, 3, 5, 4)] * 2,
            UIB(256, 0, 0, 2),
            UIB(256, 3, 5, 2),
            UIB(256, 0, 0, 2),
            UIB(256, 0, 0, 4),
            _MQA_M32,
            UIB(256, 3, 0, 4),
            _MQA_M32,
            UIB(256, 5, 5, 4),
            _MQA_M32,
            UIB(256, 5, 0, 4),
            _MQA_M32,
            UIB(256, 5, 0, 4),
        ),
        HEAD,
    ),
)

_MQA_L16 = MQA(192, heads=8, key_dim=48, kv_stride=2)
_MQA_L32 = MQA(512, heads=8, key_dim=64)

HYBRID_LARGE = Architecture(
    stem=24,
    act="gelu",
    layer_scale=1e-5,
    stages=(
        _stage(FusedIB(48, 3, 4, 2)),
        _stage(UIB(96, 3, 5, 4, 2), UIB(96, 3, 3, 4)),
        _stage(
            UIB(192, 3, 5, 4, 2),
            [UIB(192, 3, 3, 4)] * 3,
            UIB(192, 3, 5, 4),
            [UIB(192, 5, 3, 4)] * 2,
            _MQA_L16,
            UIB(192, 5, 3, 4),
            _MQA_L16,
            UIB(192, 5, 3, 4),
            _MQA_L16,
            UIB(192, 5, 3, 4),
            _MQA_L16,
            UIB(192, 3, 0, 4),
        ),
        _stage(
            UIB(512, 5, 5, 4, 2),
            [UIB(512, 5, 5, 4)] * 3,
            UIB(512, 5, 0, 4),
            UIB(512, 5, 3, 4),
            [UIB(512, 5, 0, 4)] * 2,
            UIB(512, 5, 3, 4),
            UIB(512, 5, 5, 4),
            _MQA_L32,
            UIB(512, 5, 0, 4),
            _MQA_L32,
            UIB(512, 5, 0, 4),
            _MQA_L32,
            UIB(512, 5, 0, 4),
            _MQA_L32,
            UIB(512, 5, 0, 4),
        ),
        HEAD,
    ),
)

# Which stage outputs are the pyramid levels: the stem is P1, stages 0-2 end P2-P4, and P5 is the last stage
# (stage 3 also ends at stride 32 but the 1x1 conv to 960 follows it at the same resolution).
OUTPUT_STAGES = (0, 1, 2, 4)
