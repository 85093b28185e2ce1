"""Key mapping from timm's `mobilenetv4_*` state dicts to our MobileNetV4 stages.

timm names the stem `conv_stem`/`bn1` and the blocks `blocks.<stage>.<index>` (EdgeResidual, ConvBnAct,
UniversalInvertedResidual, MobileAttention); our stages use `stem` and `stages.<stage>.<index>` with the
block layouts of blocks.py/attention.py. Stage and block indices are the same, so the mapping is a table of
module-prefix pairs per block type; tensors are taken as they are (layouts and channel orders agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from models.backbones.mobilenetv4.attention import MobileMQABlock
from models.backbones.mobilenetv4.blocks import FusedInvertedBottleneck, UniversalInvertedBottleneck
from models.backbones.mobilenetv4.layers import ConvNormAct

if TYPE_CHECKING:
    from models.backbones.mobilenetv4.stage import MobileNetV4

# Full classifier checkpoints carry the classification head; a detection backbone drops it.
TIMM_HEAD_PREFIXES = ("conv_head.", "norm_head.", "classifier.")


def _conv_pairs(ours: str, timm_conv: str, timm_bn: str) -> list[tuple[str, str]]:
    return [(f"{ours}.conv.", f"{timm_conv}."), (f"{ours}.bn.", f"{timm_bn}.")]


def _block_pairs(block: nn.Module, ours: str, timm: str) -> list[tuple[str, str]]:
    """(our prefix, timm prefix) for every parameter-holding module of one block."""
    if isinstance(block, ConvNormAct):  # timm ConvBnAct: conv, bn1
        return _conv_pairs(ours, f"{timm}.conv", f"{timm}.bn1")
    if isinstance(block, FusedInvertedBottleneck):  # timm EdgeResidual
        return _conv_pairs(f"{ours}.expand", f"{timm}.conv_exp", f"{timm}.bn1") + _conv_pairs(
            f"{ours}.project", f"{timm}.conv_pwl", f"{timm}.bn2"
        )
    if isinstance(block, UniversalInvertedBottleneck):  # timm UniversalInvertedResidual
        pairs = [(f"{ours}.layer_scale.", f"{timm}.layer_scale.")]
        for mine, theirs in (
            ("start_dw", "dw_start"),
            ("expand", "pw_exp"),
            ("middle_dw", "dw_mid"),
            ("project", "pw_proj"),
        ):
            pairs += _conv_pairs(f"{ours}.{mine}", f"{timm}.{theirs}.conv", f"{timm}.{theirs}.bn")
        return pairs
    if isinstance(block, MobileMQABlock):  # timm MobileAttention + MultiQueryAttention2d
        a, t = f"{ours}.attn", f"{timm}.attn"
        return [
            (f"{ours}.norm.", f"{timm}.norm."),
            (f"{ours}.layer_scale.", f"{timm}.layer_scale."),
            (f"{a}.query_proj.", f"{t}.query.proj."),
            (f"{a}.key_proj.", f"{t}.key.proj."),
            (f"{a}.value_proj.", f"{t}.value.proj."),
            (f"{a}.output_proj.", f"{t}.output.proj."),
            *_conv_pairs(f"{a}.key_down", f"{t}.key.down_conv", f"{t}.key.norm"),
            *_conv_pairs(f"{a}.value_down", f"{t}.value.down_conv", f"{t}.value.norm"),
        ]
    raise TypeError(f"no timm mapping for block type {type(block).__name__}")


def timm_prefix_map(stage: MobileNetV4) -> dict[str, str]:
    """timm module prefix -> our module prefix for every block of `stage`."""
    pairs = _conv_pairs("stem", "conv_stem", "bn1")
    for s, blocks in enumerate(stage.stages):
        for b, block in enumerate(blocks):
            pairs += _block_pairs(block, f"stages.{s}.{b}", f"blocks.{s}.{b}")
    return {theirs: mine for mine, theirs in pairs}


def timm_to_ours(stage: MobileNetV4, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm MobileNetV4 state dict to our keys; the classifier head is dropped.

    Raises ValueError naming the keys that belong to neither (a different model) or that are missing.
    """
    if any(isinstance(m, nn.Identity) and name.endswith(".bn") for name, m in stage.named_modules()):
        raise ValueError("convert_state_dict needs an unfused stage: load the weights, then fuse")
    prefixes = timm_prefix_map(stage)
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state_dict.items():
        key = key.removeprefix("module.")  # saved from DataParallel / DistributedDataParallel
        if key.startswith(TIMM_HEAD_PREFIXES):
            continue
        module, _, leaf = key.rpartition(".")
        mine = prefixes.get(module + ".")
        if mine is None:
            unknown.append(key)
            continue
        converted[mine + leaf] = tensor
    expected = set(stage.state_dict())
    missing = sorted(expected - set(converted))
    extra = sorted(set(converted) - expected)
    name = type(stage).__name__
    if unknown or extra:
        shown = ", ".join((unknown + extra)[:6])
        raise ValueError(f"{name}: {len(unknown) + len(extra)} checkpoint keys do not belong to this variant: {shown}")
    if missing:
        raise ValueError(f"{name}: the checkpoint lacks {len(missing)} keys, e.g. {', '.join(missing[:6])}")
    own = stage.state_dict()
    for key, tensor in converted.items():
        if tensor.shape != own[key].shape:
            raise ValueError(
                f"{name}: {key} has shape {tuple(tensor.shape)} in the checkpoint but {tuple(own[key].shape)} here "
                f"(width={stage.width}, in_channels={stage.stem.conv.in_channels}): a different width or input"
            )
    return converted
