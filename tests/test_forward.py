"""Forward passes: batches, non-square inputs, raw maps in training, decoded boxes in eval."""

from __future__ import annotations

import pytest
import torch

from models.detection_model import DetectionModel


@pytest.mark.parametrize("cfg, extra_columns", [("yolov5n.yaml", 5), ("yolo11n.yaml", 4)])
def test_non_square_batch(cfg: str, extra_columns: int) -> None:
    model = DetectionModel(cfg, nc=3)
    image = torch.rand(2, 3, 320, 480)
    cells = sum((320 // s) * (480 // s) for s in (8, 16, 32))

    raw = model.train()(image)
    assert len(raw) == 3
    for level, stride in zip(raw, (8, 16, 32)):
        # anchor head: (batch, anchors, h, w, outputs); DFL head: (batch, outputs, h, w)
        assert level.shape[0] == 2 and tuple(level.shape[2:4]) == (320 // stride, 480 // stride)

    model.eval()
    with torch.no_grad():
        decoded = model(image)
    anchors_per_cell = 3 if extra_columns == 5 else 1
    assert decoded.shape == (2, cells * anchors_per_cell, extra_columns + 3)
    # boxes are pixels inside a generous band around the image; scores are probabilities
    assert decoded[..., 4:].min() >= 0 and decoded[..., 4:].max() <= 1
    assert decoded[..., 0].abs().max() < 480 * 3


def test_strides_known_before_forward() -> None:
    model = DetectionModel("yolo11n.yaml", nc=1)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]


def test_forward_raw_matches_training_output() -> None:
    model = DetectionModel("yolo11n.yaml", nc=2).eval()
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        raw = model.forward_raw(image)
        assert torch.equal(model.head.decode(raw), model(image))
