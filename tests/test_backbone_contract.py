"""The contract of every registered multi-output stage (backbone), checked for each one the project ships.

A stage declares `feature_info` (channels, stride) before any forward pass, fine to coarse, and its outputs
must match that declaration. A width factor that cannot be honoured fails with a message naming `width`.
"""

from __future__ import annotations

import inspect

import pytest
import torch

import models.backbones  # noqa: F401  (registers every backbone)
from models.backbones.levels import OptionalDependencyError
from models.backbones.stage import MultiOutputStage
from models.layer_spec import LAYERS


def registered_stages() -> list[type[MultiOutputStage]]:
    """Every registered layer whose class is a MultiOutputStage from the project (not test-only stages)."""
    stages = []
    for name in LAYERS:
        cls = LAYERS.get(name).cls
        if isinstance(cls, type) and issubclass(cls, MultiOutputStage) and cls.__module__.startswith("models."):
            stages.append(cls)
    return stages


STAGES = registered_stages()


def build(cls: type[MultiOutputStage], *args: object) -> MultiOutputStage:
    try:
        return cls(*args)
    except OptionalDependencyError as e:
        pytest.skip(f"{cls.__name__}: {e}")


def test_every_backbone_is_covered() -> None:
    names = {cls.__name__ for cls in STAGES}
    assert {"MobileNetV4ConvSmall", "MobileNetV4HybridLarge", "TimmBackbone", "TorchvisionBackbone"} <= names


@pytest.mark.parametrize("cls", STAGES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("in_channels", [3, 1])
def test_outputs_match_declaration(cls: type[MultiOutputStage], in_channels: int) -> None:
    stage = build(cls, in_channels).eval()
    info = stage.feature_info
    assert info, f"{cls.__name__} declares no outputs"
    strides = [f.stride for f in info]
    assert strides == sorted(set(strides)), f"{cls.__name__}: strides {strides} are not increasing"
    assert all(f.channels > 0 for f in info)
    with torch.no_grad():
        outputs = stage(torch.rand(1, in_channels, 64, 64))
    assert isinstance(outputs, (list, tuple)) and len(outputs) == len(info)
    got = [(int(o.shape[1]), 64 / o.shape[-2], 64 / o.shape[-1]) for o in outputs]
    assert got == [(f.channels, f.stride, f.stride) for f in info], f"{cls.__name__}: outputs {got} vs declared {info}"


WIDTH_STAGES = [cls for cls in STAGES if "width" in inspect.signature(cls).parameters]


@pytest.mark.parametrize("cls", WIDTH_STAGES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("width", [0, -1.0, 0.01])
def test_unusable_width_is_refused(cls: type[MultiOutputStage], width: float) -> None:
    with pytest.raises(ValueError, match="width"):
        cls(3, width=width)
