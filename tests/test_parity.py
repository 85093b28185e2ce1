"""Parity with the reference implementations: total and per-layer parameters, GFLOPs at one decimal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.detection_model import DetectionModel
from models.summary import count_parameters, gflops

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "reference_sizes.json").read_text())["models"]


@pytest.mark.parametrize("cfg", sorted(REFERENCE))
def test_sizes_match_reference(cfg: str) -> None:
    expected = REFERENCE[cfg]
    model = DetectionModel(cfg)
    assert [count_parameters(layer) for layer in model.model] == expected["layers"]
    assert count_parameters(model) == expected["params"]
    assert round(gflops(model, 640), 1) == round(expected["gflops"], 1)
