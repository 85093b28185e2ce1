"""The MobileOne and InceptionNeXt detector configs: every scale builds and runs on a non-square image."""

from __future__ import annotations

import pytest
import torch

from models.config import CFG_DIR, read_yaml
from models.detection_model import DetectionModel
from models.layers.mobileone import MobileOneBlock

SCALED = [
    "mobileone/yolo11_mobileone.yaml",
    "inceptionnext/yolov5_inceptionnext.yaml",
    "inceptionnext/yolo11_inceptionnext.yaml",
]
CASES = [(str(CFG_DIR / "mobileone/yolov5s_mobileone.yaml"), None)] + [
    (str(CFG_DIR / path), scale) for path in SCALED for scale in read_yaml(CFG_DIR / path)["scales"]
]


def expected_shape(model: DetectionModel, height: int, width: int) -> tuple[int, int, int]:
    cells = sum((height // s) * (width // s) for s in (8, 16, 32))
    anchors = 3 if model.head.has_objectness else 1
    return 1, cells * anchors, 4 + int(model.head.has_objectness) + model.nc


@pytest.mark.parametrize("cfg, scale", CASES, ids=[f"{c.split('/')[-1][:-5]}-{s}" for c, s in CASES])
def test_builds_and_runs_at_320x480(cfg: str, scale: str | None) -> None:
    model = DetectionModel(cfg, scale=scale).eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        assert model(torch.rand(1, 3, 320, 480)).shape == expected_shape(model, 320, 480)


@pytest.mark.parametrize("name", ["yolo11n_mobileone.yaml", "yolov5n_inceptionnext.yaml", "yolo11n_inceptionnext.yaml"])
def test_scale_letter_names_run_at_640(name: str) -> None:
    model = DetectionModel(name).eval()  # the scale letter in the name picks scale n of the unified file
    assert model.yaml["scale"] == "n"
    with torch.no_grad():
        assert model(torch.rand(1, 3, 640, 640)).shape == expected_shape(model, 640, 640)


def test_reference_yolov5n_inceptionnext_layout() -> None:
    """REFERENCE.md: the backbone fills slots 0-4 (P1 empty), SPPF is 5, Detect reads 13, 16, 19."""
    model = DetectionModel("yolov5n_inceptionnext.yaml")
    backbone = model.records[0]
    assert backbone.label == "0-4" and backbone.slots == [1, 2, 3, 4] and backbone.args == [3, False]
    assert [(o.channels, o.stride) for o in backbone.outputs] == [(96, 4), (192, 8), (384, 16), (768, 32)]
    assert model.records[1].first_slot == 5 and model.records[-1].written_from == [13, 16, 19]


def test_fused_yolo11_mobileone_has_no_branches() -> None:
    model = DetectionModel("yolo11n_mobileone.yaml", fused=True)
    blocks = [m for m in model.modules() if isinstance(m, MobileOneBlock)]
    assert blocks and all(b.is_fused and b.conv_branches is None for b in blocks)
