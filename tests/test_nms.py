"""non_max_suppression: edge cases, both head families, and agreement with a plain greedy NMS."""

from __future__ import annotations

import pytest
import torch

from utils.boxes import box_iou
from utils.nms import non_max_suppression


def make_prediction(rows: list[list[float]], nc: int, objectness: bool = False) -> torch.Tensor:
    """(1, n, 4 + [1] + nc) from rows [xc, yc, w, h, (obj,) class scores...]."""
    width = 4 + int(objectness) + nc
    tensor = torch.tensor(rows, dtype=torch.float32).reshape(1, -1, width)
    return tensor


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thres: float) -> list[int]:
    """Textbook NMS: take the best remaining box, drop all that overlap it by more than iou_thres."""
    iou = box_iou(boxes, boxes).tolist()
    order = scores.argsort(descending=True).tolist()
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [j for j in order if iou[best][j] <= iou_thres]
    return keep


def test_no_boxes_and_nothing_above_threshold():
    out = non_max_suppression(torch.zeros((2, 0, 7)))
    assert len(out) == 2 and all(o.shape == (0, 6) for o in out)
    low = make_prediction([[50, 50, 10, 10, 0.1, 0.2, 0.25]], nc=3)  # 0.25 is not above 0.25
    assert non_max_suppression(low, conf_thres=0.25)[0].shape == (0, 6)


def test_boxes_are_xyxy_and_sorted():
    pred = make_prediction([[50, 40, 20, 10, 0.6, 0.1], [150, 40, 20, 10, 0.1, 0.9]], nc=2)
    det = non_max_suppression(pred)[0]
    torch.testing.assert_close(det, torch.tensor([[140, 35, 160, 45, 0.9, 1], [40, 35, 60, 45, 0.6, 0]]))


def test_per_class_vs_agnostic():
    # Two heavily overlapping boxes of different classes.
    pred = make_prediction([[50, 50, 20, 20, 0.9, 0.0], [52, 50, 20, 20, 0.0, 0.8]], nc=2)
    assert non_max_suppression(pred, agnostic=False)[0].shape[0] == 2
    agnostic = non_max_suppression(pred, agnostic=True)[0]
    assert agnostic.shape[0] == 1 and agnostic[0, 5] == 0
    # Same class: suppressed either way.
    same = make_prediction([[50, 50, 20, 20, 0.9, 0.0], [52, 50, 20, 20, 0.8, 0.0]], nc=2)
    assert non_max_suppression(same)[0].shape[0] == 1


def test_classes_stay_apart_on_large_images():
    # Identical boxes of two classes, and a class-0 box exactly where a fixed 7680 px class offset would move the
    # class-1 box: no suppression across classes whatever the coordinates.
    pred = make_prediction(
        [[20000, 9000, 100, 100, 0.9, 0.0], [20000, 9000, 100, 100, 0.0, 0.8], [27680, 16680, 100, 100, 0.7, 0.0]], nc=2
    )
    det = non_max_suppression(pred)[0]
    assert sorted(det[:, 4].tolist()) == pytest.approx([0.7, 0.8, 0.9])


def test_multi_label():
    pred = make_prediction([[50, 50, 20, 20, 0.9, 0.6, 0.1]], nc=3)
    single = non_max_suppression(pred, multi_label=False)[0]
    multi = non_max_suppression(pred, multi_label=True)[0]
    assert single.shape[0] == 1 and single[0, 5] == 0
    assert multi.shape[0] == 2 and multi[:, 5].tolist() == [0, 1]  # same box, both classes above 0.25
    torch.testing.assert_close(multi[0, :4], multi[1, :4])
    # Agnostic multi-label: the two labels of the one box suppress each other.
    assert non_max_suppression(pred, multi_label=True, agnostic=True)[0].shape[0] == 1


def test_max_det_keeps_highest():
    rows = [[20 * i + 10, 10, 8, 8, (i + 1) / 51] for i in range(50)]  # 50 disjoint boxes
    det = non_max_suppression(make_prediction(rows, nc=1), conf_thres=0.0, max_det=10)[0]
    assert det.shape[0] == 10
    assert det[:, 4].tolist() == pytest.approx([(i + 1) / 51 for i in range(49, 39, -1)])
    few = non_max_suppression(make_prediction(rows, nc=1), conf_thres=0.0, max_candidates=5)[0]
    assert few.shape[0] == 5 and few[:, 4].min() == pytest.approx(46 / 51)


def test_class_filter():
    pred = make_prediction([[10, 10, 8, 8, 0.9, 0, 0], [30, 10, 8, 8, 0, 0.9, 0], [50, 10, 8, 8, 0, 0, 0.9]], nc=3)
    det = non_max_suppression(pred, classes=[0, 2])[0]
    assert sorted(det[:, 5].tolist()) == [0, 2]
    multi = non_max_suppression(pred, classes=[1], multi_label=True)[0]
    assert multi[:, 5].tolist() == [1]


def test_objectness_scales_scores():
    pred = make_prediction([[10, 10, 8, 8, 0.5, 0.6, 0.1], [30, 10, 8, 8, 0.4, 0.6, 0.1]], nc=2, objectness=True)
    det = non_max_suppression(pred, conf_thres=0.25, has_objectness=True)[0]
    assert det.shape[0] == 1  # 0.5 * 0.6 = 0.30 kept, 0.4 * 0.6 = 0.24 dropped
    assert det[0, 4].item() == pytest.approx(0.30) and det[0, 5] == 0
    # Read as an anchor-free output, the objectness column would be class 0.
    as_dfl = non_max_suppression(pred, conf_thres=0.25, has_objectness=False)[0]
    assert as_dfl.shape[0] == 2 and as_dfl[:, 5].tolist() == [1, 1]


def test_matches_greedy_reference_on_random_boxes():
    generator = torch.Generator().manual_seed(0)
    n, nc = 300, 3
    xy = torch.rand(n, 2, generator=generator) * 200
    wh = torch.rand(n, 2, generator=generator) * 60 + 5
    scores = torch.rand(n, nc, generator=generator)
    pred = torch.cat((xy, wh, scores), 1)[None]
    for agnostic in (False, True):
        det = non_max_suppression(pred, conf_thres=0.3, iou_thres=0.5, agnostic=agnostic, max_det=1000)[0]
        conf, cls = scores.max(1)
        keep = conf > 0.3
        boxes = torch.cat((xy - wh / 2, xy + wh / 2), 1)[keep]
        conf, cls = conf[keep], cls[keep]
        expected = []
        for c in [None] if agnostic else range(nc):
            index = torch.arange(len(conf)) if c is None else (cls == c).nonzero().view(-1)
            expected += [index[k].item() for k in greedy_nms(boxes[index], conf[index], 0.5)]
        expected_conf = sorted(conf[expected].tolist(), reverse=True)
        assert det[:, 4].tolist() == pytest.approx(expected_conf)


def test_half_input_tuple_and_bad_arguments():
    pred = make_prediction([[50, 50, 20, 20, 0.9, 0.1]], nc=2)
    det = non_max_suppression((pred.half(), [torch.zeros(1)]))[0]
    assert det.dtype == torch.float32 and det.shape == (1, 6)
    with pytest.raises(ValueError, match="conf_thres"):
        non_max_suppression(pred, conf_thres=1.5)
    with pytest.raises(ValueError, match="max_det"):
        non_max_suppression(pred, max_det=0)
    with pytest.raises(ValueError, match="batch, anchors"):
        non_max_suppression(pred[0])
    with pytest.raises(ValueError, match="batch, anchors"):
        non_max_suppression(torch.zeros(1, 5, 5), has_objectness=True)


def test_time_limit(capsys):
    pred = make_prediction([[50, 50, 20, 20, 0.9, 0.1]], nc=2).repeat(3, 1, 1)
    out = non_max_suppression(pred, time_limit=0.0)
    assert len(out) == 3 and out[0].shape[0] == 1 and out[1].shape[0] == 0 and out[2].shape[0] == 0
    assert "time limit" in capsys.readouterr().out
    assert all(o.shape[0] == 1 for o in non_max_suppression(pred, time_limit=60.0))
