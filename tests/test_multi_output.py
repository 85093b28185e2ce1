"""The multi-output stage protocol, proven with a small test backbone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn as nn

from models.backbones.stage import MultiOutputStage
from models.config import ConfigError
from models.detection_model import DetectionModel
from models.layer_spec import LAYERS, FeatureSpec, register_layer
from models.layers.conv import Conv


class ToyStage(MultiOutputStage):
    """Four stride-2 convs after a stride-2 stem; outputs at strides 4, 8, 16, 32 (no P1)."""

    def __init__(self, in_channels: int, width: float = 1.0) -> None:
        super().__init__()
        widths = [int(c * width) for c in (8, 16, 32, 64)]
        self.stem = Conv(in_channels, widths[0], 3, 2)
        self.stages = nn.ModuleList(Conv(a, b, 3, 2) for a, b in zip([widths[0]] + widths[:-1], widths))
        self.feature_info = [FeatureSpec(c, 2 ** (i + 2)) for i, c in enumerate(widths)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs


@pytest.fixture(autouse=True, scope="module")
def toy_stage_registered() -> Iterator[None]:
    """ToyStage is a YAML name only while this module's tests run: the global registry is left as found."""
    register_layer()(ToyStage)
    yield
    LAYERS.remove("ToyStage")


def toy_config(p3: int = 2, p4: int = 3) -> dict:
    return {
        "nc": 2,
        "depth_multiple": 0.33,
        "width_multiple": 0.25,
        "backbone": [[-1, 1, "ToyStage", [2.0]], [-1, 1, "SPPF", [256, 5]]],  # stage fills 0-4, SPPF is 5
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, p4], 1, "Concat", [1]],
            [-1, 1, "C3", [128, False]],  # 8
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, p3], 1, "Concat", [1]],
            [-1, 1, "C3", [64, False]],  # 11
            [[11, 8, 5], 1, "Detect", ["nc"]],
        ],
    }


def test_stage_fills_one_slot_per_level() -> None:
    model = DetectionModel(toy_config())
    stage = model.records[0]
    assert stage.label == "0-4" and stage.slots == [1, 2, 3, 4]
    assert model.records[1].first_slot == 5
    assert [(o.channels, o.stride) for o in stage.outputs] == [(16, 4), (32, 8), (64, 16), (128, 32)]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]  # known without a forward pass

    image = torch.rand(2, 3, 96, 128)
    features = model.features(image)
    assert [tuple(f.shape[1:]) for f in features] == [(16, 12, 16), (32, 6, 8), (64, 3, 4)]
    with torch.no_grad():
        assert model.eval()(image).shape == (2, 12 * 16 + 6 * 8 + 3 * 4, 4 + 2)


def test_empty_slot_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"layer 10 .*empty slot"):
        DetectionModel(toy_config(p3=0))


def test_stride_mismatch_in_concat_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"layer 7 .*different strides \(16, 8\)"):
        DetectionModel(toy_config(p4=2))
