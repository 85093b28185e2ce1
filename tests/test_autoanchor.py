"""AutoAnchor: best possible recall by hand, refitting anchors that fit badly, leaving good ones alone, and
the same anchors for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.detection_model import DetectionModel
from utils.autoanchor import anchor_fit, check_anchors, kmean_anchors, kmeans, label_wh_at_size

YOLOV5_ANCHORS = np.array(
    [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119], [116, 90], [156, 198], [373, 326]], dtype=np.float64
)


def anchor_model() -> DetectionModel:
    config = {
        "nc": 2,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "anchors": YOLOV5_ANCHORS.reshape(3, 6).tolist(),
        "backbone": [
            [-1, 1, "Conv", [8, 3, 2]],
            [-1, 1, "Conv", [8, 3, 2]],
            [-1, 1, "Conv", [8, 3, 2]],
            [-1, 1, "Conv", [8, 3, 2]],
            [-1, 1, "Conv", [8, 3, 2]],
        ],
        "head": [[[2, 3, 4], 1, "Detect", ["nc", "anchors"]]],
    }
    return DetectionModel(config)


def far_sizes(seed: int = 1) -> np.ndarray:
    """Long thin boxes (about 300 x 12 px and 12 x 250 px): no default anchor is within a factor 4 of both."""
    rng = np.random.default_rng(seed)
    wide = np.exp(rng.normal(np.log([300, 12]), 0.25, size=(300, 2)))
    tall = np.exp(rng.normal(np.log([12, 250]), 0.25, size=(300, 2)))
    return np.concatenate((wide, tall))


def test_anchor_fit_by_hand() -> None:
    anchors = np.array([[10.0, 10.0], [40.0, 20.0]])
    boxes = np.array([[10.0, 10.0], [39.0, 10.0], [100.0, 100.0], [80.0, 20.0]])
    # Ratios: box 1 fits anchor 1 (1.0) and anchor 2 (worse side 4.0: not above 1/4); box 2: 3.9 / 2.0;
    # box 3: 10 / 5 (none); box 4: 8 / 2 (anchor 2 only).
    bpr, above = anchor_fit(anchors, boxes, threshold=4.0)
    assert bpr == pytest.approx(3 / 4)
    assert above == pytest.approx((1 + 2 + 0 + 1) / 4)


def test_refits_anchors_far_from_the_boxes() -> None:
    model = anchor_model()
    before = model.head.anchors.clone()
    boxes = far_sizes()
    report = check_anchors(model, boxes, threshold=4.0, imgsz=640, generations=300, progress=False)
    assert report.bpr < 0.9 and report.replaced and report.new_bpr > 0.98
    installed = model.head.anchors.detach().numpy().reshape(-1, 2)
    assert not torch.equal(model.head.anchors, before)
    assert np.allclose(installed, report.anchors.reshape(-1, 2))
    assert anchor_fit(installed, boxes, 4.0)[0] == pytest.approx(report.new_bpr)
    area = model.head.anchors.prod(-1).mean(-1)
    assert area[0] <= area[1] <= area[2]  # small anchors on the fine (stride 8) level


def test_leaves_good_anchors_alone() -> None:
    model = anchor_model()
    before = model.head.anchors.clone()
    rng = np.random.default_rng(2)
    boxes = YOLOV5_ANCHORS[rng.integers(0, 9, 400)] * np.exp(rng.normal(0, 0.2, size=(400, 2)))
    report = check_anchors(model, boxes, threshold=4.0, progress=False)
    assert report.bpr >= 0.98 and not report.replaced and report.proposed is None
    assert torch.equal(model.head.anchors, before)


def test_keeps_the_original_when_the_refit_is_not_better() -> None:
    model = anchor_model()
    before = model.head.anchors.clone()
    boxes = np.repeat(YOLOV5_ANCHORS, 20, axis=0)  # BPR is already 1.0; ask for more than that
    report = check_anchors(model, boxes, threshold=4.0, min_bpr=1.01, generations=50, progress=False)
    assert report.bpr == 1.0 and report.new_bpr is not None and not report.replaced
    assert torch.equal(model.head.anchors, before)


def test_same_seed_same_anchors() -> None:
    boxes = far_sizes(seed=3)
    first = kmean_anchors(boxes, 9, generations=200, seed=7, progress=False)
    second = kmean_anchors(boxes, 9, generations=200, seed=7, progress=False)
    assert np.array_equal(first, second)
    assert np.all(np.diff(first.prod(1)) >= 0)  # sorted small to large
    model_a, model_b = anchor_model(), anchor_model()
    check_anchors(model_a, boxes, generations=100, seed=4, progress=False)
    check_anchors(model_b, boxes, generations=100, seed=4, progress=False)
    assert torch.equal(model_a.head.anchors, model_b.head.anchors)


def test_kmeans_finds_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(0, 0.3, size=(50, 2)) for c in centres])
    found = kmeans(points, 3, np.random.default_rng(1))
    distance = np.linalg.norm(found[:, None] - centres[None], axis=-1)  # (found, true)
    assert sorted(distance.argmin(1).tolist()) == [0, 1, 2] and distance.min(1).max() < 0.2


def test_label_wh_at_size() -> None:
    # A 200x400 (h x w) image letterboxed to 320: ratio 0.8. A box of half the width and a quarter height.
    sizes = label_wh_at_size([np.array([[0.5, 0.25]]), np.zeros((0, 2))], [(200, 400), (100, 100)], 320)
    assert np.allclose(sizes, [[160.0, 40.0]])


def test_bad_input_fails_clearly() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        check_anchors(anchor_model(), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="empty"):
        check_anchors(anchor_model(), np.zeros((0, 2)))
    with pytest.raises(TypeError, match="anchor-based"):
        check_anchors(
            DetectionModel({**anchor_model().yaml, "anchors": None, "head": [[[2, 3, 4], 1, "Detect", ["nc"]]]}),
            far_sizes(),
        )
