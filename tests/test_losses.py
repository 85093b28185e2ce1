"""The detection losses: contract (finite, gradients, batch scaling, names), learning on a fixed batch,
YOLOv5's target building checked by hand, label smoothing, empty batches and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from losses import (
    AlignedAnchorLoss,
    AnchorLoss,
    DetectionLoss,
    DFLLoss,
    build_anchor_targets,
    build_loss,
    distribution_focal_loss,
)
from losses.anchor_loss import AnchorLossHyp, objectness_balance, scaled_gains
from losses.bce import FocalBCEWithLogits, smooth_bce_targets
from losses.dfl_loss import targets_per_image  # the assignment both losses see
from models.detection_model import DetectionModel
from tests.helpers import ALIGNED_HYP, ANCHOR_HYP, DFL_HYP
from utils.boxes import dist_to_box, make_anchor_points

# Three losses: YOLOv5's (AnchorLoss) and the task-aligned one (the default) for the anchor head, DFL for the other.
HYPS = {"anchor": ANCHOR_HYP, "aligned": ALIGNED_HYP, "dfl": DFL_HYP}
LOSS_NAMES = {"anchor": "AnchorLoss", "aligned": "AlignedAnchorLoss", "dfl": "DFLLoss"}
HEADS = {"anchor": "anchor", "aligned": "anchor", "dfl": "dfl"}  # the model family each loss trains
TARGETS = torch.tensor([[0, 0, 0.5, 0.5, 0.4, 0.5], [1, 1, 0.3, 0.6, 0.3, 0.2], [1, 0, 0.7, 0.3, 0.4, 0.4]])


def tiny_config(family: str) -> dict:
    """Five strided convs and a head on strides 8, 16, 32: fast enough for a few optimiser steps."""
    head = ["nc", "anchors"] if family == "anchor" else ["nc"]
    config = {
        "nc": 2,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "backbone": [
            [-1, 1, "Conv", [8, 3, 2]],
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
            [-1, 1, "Conv", [32, 3, 2]],
        ],
        "head": [[[2, 3, 4], 1, "Detect", head]],
    }
    if family == "anchor":
        config["anchors"] = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    return config


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, DetectionModel]:
    return {family: DetectionModel(tiny_config(family)) for family in ("anchor", "dfl")}


def family_loss(model: DetectionModel, family: str, **kwargs) -> DetectionLoss:
    return build_loss(model, HYPS[family], name=LOSS_NAMES[family], **kwargs)


def test_build_loss_picks_the_family(tiny_models: dict) -> None:
    anchor, dfl = build_loss(tiny_models["anchor"], ALIGNED_HYP), build_loss(tiny_models["dfl"], DFL_HYP)
    assert isinstance(anchor, AlignedAnchorLoss) and anchor.names == ("box", "obj", "cls")
    assert isinstance(build_loss(tiny_models["anchor"], ANCHOR_HYP, name="AnchorLoss"), AnchorLoss)
    assert isinstance(dfl, DFLLoss) and dfl.names == ("box", "cls", "dfl")
    with pytest.raises(TypeError, match="Detect"):
        build_loss(torch.nn.Linear(2, 2), ANCHOR_HYP)


@pytest.mark.parametrize(
    "cfg,family", [("yolov5n.yaml", "anchor"), ("yolov5n.yaml", "aligned"), ("yolo11n.yaml", "dfl")]
)
def test_loss_finite_with_gradients(cfg: str, family: str) -> None:
    model = DetectionModel(cfg, nc=2).train()
    loss = family_loss(model, family)
    total, items = loss(model(torch.rand(2, 3, 64, 64)), TARGETS)
    assert total.ndim == 0 and torch.isfinite(total) and total > 0
    assert items.shape == (3,) and not items.requires_grad and torch.isfinite(items).all()
    total.backward()
    head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    first_conv = next(model.parameters())
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0  # reaches the backbone


@pytest.mark.parametrize("family", ["anchor", "aligned", "dfl"])
def test_loss_decreases_on_a_fixed_batch(family: str) -> None:
    model = DetectionModel(tiny_config(HEADS[family])).train()
    loss = family_loss(model, family)
    images = torch.rand(2, 3, 96, 96)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(30):
        total, _ = loss(model(images), TARGETS)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append(total.item())
    assert all(math.isfinite(v) for v in history)
    assert sum(history[-5:]) / 5 < 0.6 * history[0], history


@pytest.mark.parametrize("family", ["anchor", "aligned", "dfl"])
def test_empty_targets_give_a_finite_loss(tiny_models: dict, family: str) -> None:
    model = tiny_models[HEADS[family]].train()
    loss = family_loss(model, family)
    model.zero_grad()
    total, items = loss(model(torch.rand(2, 3, 64, 64)), torch.zeros(0, 6))
    assert torch.isfinite(total) and total > 0  # background still costs objectness / class confidence
    total.backward()
    box_item = items[loss.names.index("box")]
    assert box_item == 0 and torch.isfinite(items).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("family", ["anchor", "aligned", "dfl"])
def test_total_is_items_times_batch_size(tiny_models: dict, family: str) -> None:
    model = tiny_models[HEADS[family]].eval()
    loss = family_loss(model, family)
    with torch.no_grad():
        for batch in (1, 3):
            images = torch.rand(batch, 3, 64, 64)
            total, items = loss(model.forward_raw(images), TARGETS[TARGETS[:, 0] < batch])
            assert total.item() == pytest.approx(items.sum().item() * batch, rel=1e-5)


def test_anchor_items_are_per_image(tiny_models: dict) -> None:
    """Two copies of one image: the same items, twice the total (gradient accumulation relies on it).

    (The DFL loss normalises by the batch's total target score, floored at 1, as the reference does, so its
    items are only per-image once that total exceeds 1.)
    """
    model = tiny_models["anchor"].eval()  # BatchNorm in eval: both copies see the same statistics
    loss = build_loss(model, ANCHOR_HYP, imgsz=64, name="AnchorLoss")
    image = torch.rand(1, 3, 64, 64)
    one = TARGETS[TARGETS[:, 0] == 1].clone()
    one[:, 0] = 0
    two = torch.cat((one, one.clone().index_fill_(1, torch.tensor([0]), 1.0)))
    with torch.no_grad():
        total1, items1 = loss(model.forward_raw(image), one)
        total2, items2 = loss(model.forward_raw(image.repeat(2, 1, 1, 1)), two)
    torch.testing.assert_close(items1, items2, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(total2, 2 * total1, rtol=1e-4, atol=1e-6)


def test_anchor_loss_reads_anchors_from_the_head(tiny_models: dict) -> None:
    model = tiny_models["anchor"].eval()
    loss = build_loss(model, ANCHOR_HYP, name="AnchorLoss")
    with torch.no_grad():
        raw = model.forward_raw(torch.rand(2, 3, 64, 64))
        before = loss(raw, TARGETS)[1]
        saved = model.head.anchors.clone()
        model.head.anchors.mul_(1.5)  # what AutoAnchor does when it installs new anchors
        after = loss(raw, TARGETS)[1]
        model.head.anchors.copy_(saved)
    assert before[0] != after[0]


# --- YOLOv5 target building, checked by hand -------------------------------------------------------------------


def test_anchor_targets_neighbour_cells_and_anchor_t() -> None:
    # One 8x8 level. Box centre at (3.2, 4.7) cells, size 1 x 1 cell.
    anchors = torch.tensor([[[1.0, 1.0], [5.0, 5.0], [1.0, 3.9]]])  # ratios 1, 5 (> 4: rejected), 3.9 (kept)
    targets = torch.tensor([[0, 1, 3.2 / 8, 4.7 / 8, 1 / 8, 1 / 8]])
    (level,) = build_anchor_targets([(8, 8)], targets, anchors, anchor_t=4.0)
    found = sorted(zip(level.anchor.tolist(), level.grid_x.tolist(), level.grid_y.tolist()))
    # x is 0.2 into its cell (near the left edge): left neighbour; y is 0.7 (near the bottom): cell below.
    expected = sorted((a, x, y) for a in (0, 2) for x, y in ((3, 4), (2, 4), (3, 5)))
    assert found == expected
    offsets = {
        (x, y): tuple(round(v, 4) for v in box[:2].tolist())
        for x, y, box in zip(level.grid_x.tolist(), level.grid_y.tolist(), level.box)
    }
    assert offsets == {(3, 4): (0.2, 0.7), (2, 4): (1.2, 0.7), (3, 5): (0.2, -0.3)}
    assert torch.allclose(level.box[:, 2:], torch.ones(len(level), 2))
    assert set(level.cls.tolist()) == {1} and set(level.image.tolist()) == {0}
    assert torch.equal(level.anchor_wh, anchors[0][level.anchor])
    # A stricter threshold drops the 3.9-ratio anchor too.
    (strict,) = build_anchor_targets([(8, 8)], targets, anchors, anchor_t=3.0)
    assert set(strict.anchor.tolist()) == {0} and len(strict) == 3


def test_anchor_targets_stay_inside_the_grid() -> None:
    anchors = torch.tensor([[[1.0, 1.0]]])
    # Centre in the first cell near its top-left corner, and in the last cell near its bottom-right corner.
    targets = torch.tensor([[0, 0, 0.3 / 8, 0.2 / 8, 1 / 8, 1 / 8], [0, 0, 7.8 / 8, 7.9 / 8, 1 / 8, 1 / 8]])
    (level,) = build_anchor_targets([(8, 8)], targets, anchors, anchor_t=4.0)
    cells = sorted(zip(level.grid_x.tolist(), level.grid_y.tolist()))
    assert cells == [(0, 0), (7, 7)]  # no neighbour outside the grid


def test_anchor_targets_empty_and_rectangular_grids() -> None:
    anchors = torch.ones(2, 3, 2)
    levels = build_anchor_targets([(4, 6), (2, 3)], torch.zeros(0, 6), anchors, 4.0)
    assert [len(level) for level in levels] == [0, 0]
    # Normalised x scales with the width (6 cells) and y with the height (4 cells).
    (level, _) = build_anchor_targets([(4, 6), (2, 3)], torch.tensor([[0, 0, 0.5, 0.5, 1 / 6, 1 / 4]]), anchors, 4.0)
    assert (3, 2) in set(zip(level.grid_x.tolist(), level.grid_y.tolist()))


# --- Gains, smoothing, focal term, DFL ------------------------------------------------------------------------


def test_gain_scaling_follows_levels_classes_and_size() -> None:
    assert scaled_gains(AnchorLossHyp(**ANCHOR_HYP), 3, 80, 640) == pytest.approx((0.05, 1.0, 0.5))
    box, obj, cls = scaled_gains(AnchorLossHyp(**ANCHOR_HYP), 3, 2, 320)
    assert (box, obj, cls) == pytest.approx((0.05, 0.25, 0.5 * 2 / 80))
    box, obj, cls = scaled_gains(AnchorLossHyp(**ANCHOR_HYP), 4, 80, 640)
    assert (box, obj, cls) == pytest.approx((0.0375, 0.75, 0.375))
    assert objectness_balance(3) == (4.0, 1.0, 0.4) and objectness_balance(4) == (4.0, 1.0, 0.25, 0.06)


def test_label_smoothing_targets(tiny_models: dict) -> None:
    assert smooth_bce_targets(0.0) == (1.0, 0.0) and smooth_bce_targets(0.2) == pytest.approx((0.9, 0.1))
    with pytest.raises(ValueError, match="label_smoothing"):
        smooth_bce_targets(1.5)
    anchor = build_loss(tiny_models["anchor"], {**ANCHOR_HYP, "label_smoothing": 0.2}, name="AnchorLoss")
    assert torch.allclose(anchor.class_targets(torch.tensor([1, 0])), torch.tensor([[0.1, 0.9], [0.9, 0.1]]))

    dfl_plain = build_loss(tiny_models["dfl"], DFL_HYP)
    dfl_smooth = build_loss(tiny_models["dfl"], {**DFL_HYP, "label_smoothing": 0.2})
    model = tiny_models["dfl"].eval()
    with torch.no_grad():
        raw = model.forward_raw(torch.rand(2, 3, 64, 64))
    assigned = _assign(dfl_plain, raw, targets_per_image)
    plain, smooth = dfl_plain.class_targets(assigned), dfl_smooth.class_targets(assigned)
    fg = assigned.foreground
    assert fg.any()
    score = plain.sum(-1)  # the alignment score of each assigned point (one-hot targets)
    labels = assigned.labels[fg]
    rows = torch.arange(int(fg.sum()))
    assert torch.allclose(smooth[fg][rows, labels], 0.9 * score[fg])
    assert torch.allclose(smooth[fg][rows, 1 - labels], 0.1 * score[fg])
    assert torch.equal(smooth[~fg], torch.zeros_like(smooth[~fg]))  # background stays all-zero


def _assign(loss: DFLLoss, raw: list[torch.Tensor], targets_per_image) -> object:
    flat = torch.cat([p.flatten(2) for p in raw], 2).transpose(1, 2)
    box_logits, cls_logits = flat.split((4 * loss.reg_max, loss.nc), 2)
    points, strides = make_anchor_points([p.shape[2:] for p in raw], loss.head.stride)
    labels, boxes, mask = targets_per_image(TARGETS, 2, torch.tensor([64.0, 64.0]))
    pred = dist_to_box(loss.decode_distances(box_logits), points, xywh=False) * strides
    return loss.assigner(cls_logits.sigmoid(), pred, points * strides, labels, boxes, mask)


def test_focal_bce() -> None:
    logits, targets = torch.randn(20, 3), torch.rand(20, 3).round()
    plain = FocalBCEWithLogits(pos_weight=1.7)(logits, targets)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(logits, targets, pos_weight=torch.tensor([1.7])))
    focal = FocalBCEWithLogits(gamma=2.0, reduction="none")(logits, targets)
    p_t = torch.where(targets > 0, logits.sigmoid(), 1 - logits.sigmoid())
    alpha_t = torch.where(targets > 0, 0.25, 0.75)
    expected = -alpha_t * (1 - p_t) ** 2 * p_t.log()
    assert torch.allclose(focal, expected, atol=1e-6)


def test_distribution_focal_loss_by_hand() -> None:
    logits = torch.randn(3, 16)
    target = torch.tensor([2.3, 0.0, 14.99])
    log_p = logits.log_softmax(-1)
    expected = torch.stack(
        [
            -(0.7 * log_p[0, 2] + 0.3 * log_p[0, 3]),
            -log_p[1, 0],
            -(0.01 * log_p[2, 14] + 0.99 * log_p[2, 15]),  # clamped to 15 - 0.01
        ]
    )
    assert torch.allclose(distribution_focal_loss(logits, target), expected, atol=1e-5)


# --- Bad input -----------------------------------------------------------------------------------------------


def test_bad_input_fails_clearly(tiny_models: dict) -> None:
    with pytest.raises(ValueError, match="anchor_t"):
        build_loss(tiny_models["anchor"], {k: v for k, v in ANCHOR_HYP.items() if k != "anchor_t"}, name="AnchorLoss")
    with pytest.raises(ValueError, match="'dfl' must be a number"):
        build_loss(tiny_models["dfl"], {**DFL_HYP, "dfl": "high"})
    loss = build_loss(tiny_models["dfl"], DFL_HYP)
    raw = tiny_models["dfl"].forward_raw(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\(M, 6\)"):
        loss(raw, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="class outside"):
        loss(raw, torch.tensor([[0, 2, 0.5, 0.5, 0.1, 0.1]]))
    with pytest.raises(ValueError, match="image index"):
        loss(raw, torch.tensor([[2, 0, 0.5, 0.5, 0.1, 0.1]]))
    with pytest.raises(ValueError, match="raw maps"):
        loss(raw[:2], TARGETS)
