"""The task-aligned assigner on hand-checked cases: one 8x8 level of stride 8 (a 64 px image), so the
candidate points are the cell centres 4, 12, 20, ..., 60 px along each axis."""

from __future__ import annotations

import pytest
import torch

from losses.assigner import TaskAlignedAssigner
from utils.boxes import bbox_iou, make_anchor_points

POINTS = make_anchor_points([(8, 8)], [8.0])[0] * 8  # (64, 2) pixels, row-major: index = row * 8 + column
NC = 2


def index(x: float, y: float) -> int:
    """The point at pixel centre (x, y)."""
    return int((y - 4) // 8 * 8 + (x - 4) // 8)


def assign(
    gt_boxes: list[list[float]],
    gt_labels: list[int],
    pred_boxes: torch.Tensor,
    scores: torch.Tensor,
    topk: int = 10,
    mask: list[bool] | None = None,
    strides: tuple[float, ...] = (8.0,),
):
    boxes = torch.tensor(gt_boxes, dtype=torch.float32).view(1, -1, 4)
    labels = torch.tensor(gt_labels, dtype=torch.float32).view(1, -1, 1)
    gt_mask = torch.tensor(mask if mask is not None else [True] * len(gt_labels)).view(1, -1, 1)
    assigner = TaskAlignedAssigner(NC, topk=topk, alpha=0.5, beta=6.0, strides=strides)
    return assigner(scores.view(1, 64, NC), pred_boxes.view(1, 64, 4), POINTS, labels, boxes, gt_mask)


def uniform_scores(value: float = 0.5) -> torch.Tensor:
    return torch.full((64, NC), value)


def boxes_everywhere(box: list[float]) -> torch.Tensor:
    return torch.tensor(box).repeat(64, 1)


def foreground_points(result) -> set[tuple[float, float]]:
    return {tuple(POINTS[i].tolist()) for i in result.foreground[0].nonzero().flatten().tolist()}


def test_topk_picks_the_best_aligned_points_inside_the_box() -> None:
    gt = [8.0, 8.0, 40.0, 40.0]  # contains the 16 points with x, y in {12, 20, 28, 36}
    scores = uniform_scores(0.1)
    best = [(12, 12), (20, 28), (36, 36), (28, 12)]
    for rank, (x, y) in enumerate(best):
        scores[index(x, y), 0] = 0.9 - 0.1 * rank
    scores[index(52, 52), 0] = 0.99  # confident, but outside every box
    result = assign([gt], [0], boxes_everywhere(gt), scores, topk=4)
    assert foreground_points(result) == {(float(x), float(y)) for x, y in best}
    fg = result.foreground[0]
    assert torch.equal(result.labels[0][fg], torch.zeros(4, dtype=torch.long))
    assert torch.equal(result.boxes[0][fg], torch.tensor(gt).repeat(4, 1))
    # Predicted boxes are perfect (IoU 1): targets are sqrt(score) scaled so the best point gets 1.
    targets = result.scores[0, [index(x, y) for x, y in best], 0]
    expected = torch.tensor([0.9, 0.8, 0.7, 0.6]).sqrt() / 0.9**0.5
    assert torch.allclose(targets, expected, atol=1e-5)
    assert result.scores[0, :, 1].abs().sum() == 0  # other class: zero
    assert result.scores[0][~fg].abs().sum() == 0


def test_fewer_candidates_than_topk_and_points_outside_get_nothing() -> None:
    gt = [8.0, 8.0, 24.0, 16.0]  # only points (12, 12) and (20, 12) lie inside
    pred = boxes_everywhere([6.0, 6.0, 26.0, 18.0])
    result = assign([gt], [1], pred, uniform_scores(), topk=10)
    assert foreground_points(result) == {(12.0, 12.0), (20.0, 12.0)}
    assert torch.equal(result.labels[0][result.foreground[0]], torch.tensor([1, 1]))


def test_a_point_claimed_by_two_boxes_goes_to_the_higher_overlap() -> None:
    box_a, box_b = [0.0, 0.0, 32.0, 32.0], [16.0, 16.0, 48.0, 48.0]  # 16 points each; 4 shared (x, y in {20, 28})
    shared = {(20.0, 20.0), (20.0, 28.0), (28.0, 20.0), (28.0, 28.0)}
    for pred_box, winner in (([12.0, 12.0, 44.0, 44.0], 1), ([4.0, 4.0, 36.0, 36.0], 0)):
        result = assign([box_a, box_b], [0, 1], boxes_everywhere(pred_box), uniform_scores(), topk=16)
        assert len(foreground_points(result)) == 28  # 16 + 16 - 4 shared, each point once
        for point in shared:
            i = index(*point)
            assert result.gt_index[0, i] == winner and result.labels[0, i] == winner
        assert result.gt_index[0, index(4, 4)] == 0 and result.gt_index[0, index(44, 44)] == 1


def test_tiny_box_is_widened_to_find_a_point() -> None:
    tiny = [13.0, 13.0, 15.0, 15.0]  # 2x2 px: no point centre inside
    pred = boxes_everywhere([10.0, 10.0, 18.0, 18.0])
    result = assign([tiny], [0], pred, uniform_scores())
    assert foreground_points(result) == {(12.0, 12.0)}  # widened to the stride (8 px) around its centre
    # With three levels the floor is the second level's stride (16 px): four points around (14, 14).
    result = assign([tiny], [0], pred, uniform_scores(), strides=(8.0, 16.0, 32.0))
    assert foreground_points(result) == {(12.0, 12.0), (20.0, 12.0), (12.0, 20.0), (20.0, 20.0)}


def test_padding_and_empty_images_get_no_assignment() -> None:
    gt = [0.0, 0.0, 64.0, 64.0]
    result = assign([gt], [0], boxes_everywhere(gt), uniform_scores(), mask=[False])
    assert not result.foreground.any() and result.scores.abs().sum() == 0
    assigner = TaskAlignedAssigner(NC, strides=(8.0,))
    empty = assigner(
        uniform_scores().view(1, 64, NC),
        boxes_everywhere(gt).view(1, 64, 4),
        POINTS,
        torch.zeros(1, 0, 1),
        torch.zeros(1, 0, 4),
        torch.zeros(1, 0, 1, dtype=torch.bool),
    )
    assert not empty.foreground.any() and empty.scores.shape == (1, 64, NC)


def test_target_score_peaks_at_the_best_overlap() -> None:
    gt = [8.0, 8.0, 40.0, 40.0]
    pred = boxes_everywhere([8.0, 8.0, 40.0, 40.0])
    pred[index(20, 20)] = torch.tensor([10.0, 10.0, 38.0, 38.0])  # the best point is not perfect
    pred[torch.arange(64) != index(20, 20)] = torch.tensor([0.0, 0.0, 48.0, 48.0])  # everyone else is worse
    scores = uniform_scores()
    result = assign([gt], [0], pred, scores, topk=4)
    fg = result.foreground[0]
    best_iou = bbox_iou(torch.tensor(gt), pred[index(20, 20)], xywh=False, ciou=True).item()
    assert 0 < best_iou < 1
    assert result.scores[0, index(20, 20), 0].item() == pytest.approx(best_iou, abs=1e-5)
    assert result.scores[0][fg, 0].max() == result.scores[0, index(20, 20), 0]
