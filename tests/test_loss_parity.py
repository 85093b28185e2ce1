"""Both losses against figures read off the reference implementations (yolov5 7.0.14 ComputeLoss with its
train.py gain scaling; ultralytics 8.4.190 v8DetectionLoss) on deterministic inputs, stored in
tests/fixtures/reference_losses.json. Inputs are built from a sine wave, not a random generator, so they are
the same in any torch version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from losses import AnchorLoss, DFLLoss
from models.heads.anchor_detect import AnchorDetect
from models.heads.dfl_detect import DFLDetect
from tests.helpers import ANCHOR_HYP, DFL_HYP

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "reference_losses.json").read_text())
TARGETS = torch.tensor(
    [
        [0, 0, 0.5, 0.5, 0.3, 0.4],
        [0, 2, 0.12, 0.9, 0.05, 0.08],
        [1, 1, 0.3, 0.6, 0.2, 0.1],
        [1, 2, 0.7, 0.2, 0.5, 0.3],
        [1, 0, 0.95, 0.95, 0.9, 0.7],
        [1, 1, 0.52, 0.48, 0.06, 0.3],
    ]
)
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
HEIGHT, WIDTH, NC, BATCH = 128, 96, 3, 2  # a rectangular input: rows and columns must not be swapped
SHAPES = [(HEIGHT // s, WIDTH // s) for s in (8, 16, 32)]


def wave(shape: tuple[int, ...], phase: float) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    return (torch.sin(torch.arange(n, dtype=torch.float32) * 0.37 + phase) * 2.0).view(shape)


@pytest.mark.parametrize("case", FIXTURE["anchor"], ids=lambda c: str(c["hyp"]) or "default")
def test_anchor_loss_matches_yolov5(case: dict) -> None:
    head = AnchorDetect(NC, ANCHORS, [8, 8, 8], [8, 16, 32])
    loss = AnchorLoss(head, {**ANCHOR_HYP, **case["hyp"]}, imgsz=HEIGHT)
    raw = [wave((BATCH, 3, h, w, 5 + NC), i) for i, (h, w) in enumerate(SHAPES)]
    total, items = loss(raw, TARGETS)
    torch.testing.assert_close(items, torch.tensor(case["items"]), rtol=1e-4, atol=1e-6)
    assert total.item() == pytest.approx(case["total"], rel=1e-4)


@pytest.mark.parametrize("case", FIXTURE["dfl"], ids=lambda c: str(c["hyp"]) or "default")
def test_dfl_loss_matches_ultralytics(case: dict) -> None:
    head = DFLDetect(NC, [16, 16, 16], [8, 16, 32])
    loss = DFLLoss(head, {**DFL_HYP, **case["hyp"]})
    raw = [wave((BATCH, 64 + NC, h, w), i) for i, (h, w) in enumerate(SHAPES)]
    for p in raw:  # spread the distance logits so predicted boxes overlap the targets; classes start unlikely
        p[:, :64] += torch.linspace(-2, 2, 16).repeat(4).view(1, 64, 1, 1)
        p[:, 64:] -= 4.0
    total, items = loss(raw, TARGETS)
    torch.testing.assert_close(items, torch.tensor(case["items"]), rtol=1e-4, atol=1e-5)
    assert total.item() == pytest.approx(case["total"], rel=1e-4)
