"""The task-aligned assigner on hand-checked cases: one 8x8 level of stride 8 (a 64 px image), so the
candidate points are the cell centres 4, 12, 20, ..., 60 px along each axis."""

from __future__ import annotations

import pytest
import torch

from losses import AlignedAnchorLoss, DFLLoss
from losses.assigner import TaskAlignedAssigner
from models.heads.anchor_detect import AnchorDetect
from models.heads.dfl_detect import DFLDetect
from tests.dense_assigner_reference import DenseTaskAlignedAssigner
from tests.helpers import DFL_HYP
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


def test_reach_limits_the_candidates_by_centre_offset_and_size() -> None:
    # Box centred at (32, 32), 40 px wide: the points strictly inside it are x, y in 20, 28, 36, 44. A reach of 8 px
    # leaves those nearer than 8 px to (32, 32) on both axes: 28 and 36. Exclusive: a reach of 4 px leaves none.
    box = [12.0, 12.0, 52.0, 52.0]
    boxes = torch.tensor([box], dtype=torch.float32).view(1, 1, 4)
    mask = torch.ones(1, 1, 1, dtype=torch.bool)
    assigner = TaskAlignedAssigner(NC, topk=64)
    near = torch.tensor([[8.0, 8.0, 100.0, 100.0]]).repeat(64, 1)
    _, _, n = assigner.candidate_pairs(POINTS, boxes, mask, near)
    assert {tuple(POINTS[i].tolist()) for i in n.tolist()} == {(28, 28), (36, 28), (28, 36), (36, 36)}
    assert assigner.candidate_pairs(POINTS, boxes, mask, near.clone().fill_(4.0))[2].numel() == 0
    assert len(assigner.candidate_pairs(POINTS, boxes, mask)[2]) == 16  # unlimited: the 4 x 4 points inside
    too_small = torch.tensor([[100.0, 100.0, 40.0, 100.0]]).repeat(64, 1)  # width must stay below 40: 40 is not
    assert assigner.candidate_pairs(POINTS, boxes, mask, too_small)[2].numel() == 0


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


# The sparse assigner against the dense formulation it replaced (tests/dense_assigner_reference.py).
#
# Where a box has fewer than `topk` candidates of non-zero metric, both pick the rest among tied zero-metric points
# (the dense one possibly outside the box, then dropped), and which tied points each picks is arbitrary. Such
# points get target score 0 (the score is proportional to the metric), so they add nothing to any loss: BCE
# targets stay 0 as for background, box and DFL terms are weighted by the score. The comparisons below therefore
# require equal scores everywhere and equal boxes/labels/foreground wherever the score is non-zero.


def random_case(seed: int, batch: int, num_gt: int, per_cell: int = 1, height: int = 96, width: int = 128, nc: int = 3):
    """Random predictions around three levels of points (`per_cell` points at each cell centre: 1 as the DFL
    head, 3 as the anchor head) and random boxes: some tiny, some crossing the image border, the last image empty
    (all padding)."""
    gen = torch.Generator().manual_seed(seed)
    levels = [make_anchor_points([(height // s, width // s)], [float(s)])[0] * s for s in (8, 16, 32)]
    points = torch.cat([level.repeat(per_cell, 1) for level in levels])  # (N, 2) pixels
    n = len(points)
    scores = torch.randn(batch, n, nc, generator=gen).sigmoid()
    half = torch.empty(batch, n, 2).uniform_(2, 40, generator=gen)
    centre = points + 8 * torch.randn(batch, n, 2, generator=gen)
    pred = torch.cat((centre - half, centre + half), -1)
    wh = torch.tensor([width, height], dtype=torch.float32)
    gt_centre = torch.rand(batch, num_gt, 2, generator=gen) * wh * 1.2 - 0.1 * wh  # some beyond the border
    side = torch.rand(batch, num_gt, 2, generator=gen) * wh * 0.6
    side[:, ::3] = torch.rand(batch, len(range(0, num_gt, 3)), 2, generator=gen) * 4  # tiny: < 4 px
    gt = torch.cat((gt_centre - side / 2, gt_centre + side / 2), -1)
    labels = torch.randint(0, nc, (batch, num_gt, 1), generator=gen).float()
    mask = torch.rand(batch, num_gt, 1, generator=gen) < 0.8
    if batch > 1:
        mask[-1] = False  # an empty image
    return scores, pred, points, labels, gt, mask


def random_reach(seed: int, points: torch.Tensor) -> torch.Tensor:
    """(N, 4) per-point limits on a box's centre offset (4-24 px) and size (10-60 px): some boxes reachable,
    some not."""
    gen = torch.Generator().manual_seed(seed + 100)
    offset = torch.empty(len(points), 2).uniform_(4, 24, generator=gen)
    return torch.cat((offset, torch.empty(len(points), 2).uniform_(10, 60, generator=gen)), -1)


@pytest.mark.parametrize(
    ("seed", "batch", "num_gt", "per_cell"), [(0, 1, 1, 1), (1, 2, 5, 3), (2, 3, 12, 1), (3, 4, 30, 3)]
)
@pytest.mark.parametrize("limited", [False, True])
def test_candidate_pairs_are_the_dense_inside_test(
    seed: int, batch: int, num_gt: int, per_cell: int, limited: bool
) -> None:
    _, _, points, _, gt, mask = random_case(seed, batch, num_gt, per_cell)
    reach = random_reach(seed, points) if limited else None
    assigner = TaskAlignedAssigner(NC)
    dense = (DenseTaskAlignedAssigner(NC).points_in_boxes(points, gt, reach) & mask).nonzero()
    b, g, n = assigner.candidate_pairs(points, gt, mask, reach)
    assert len(dense) > 0 or num_gt == 1
    pairs = torch.stack((b, g, n), 1)
    assert torch.equal(pairs[torch.argsort(pairs @ torch.tensor([10**8, 10**5, 1]))], dense)
    assert bool((b * num_gt + g).diff().ge(0).all())  # grouped by box, as top_candidates needs


@pytest.mark.parametrize(
    ("seed", "batch", "num_gt", "topk", "per_cell"),
    [(0, 1, 3, 10, 1), (1, 2, 8, 10, 1), (2, 4, 20, 4, 1), (3, 3, 15, 10, 3)],
)
@pytest.mark.parametrize("limited", [False, True])
def test_assignment_matches_the_dense_reference(
    seed: int, batch: int, num_gt: int, topk: int, per_cell: int, limited: bool
) -> None:
    inputs = random_case(seed, batch, num_gt, per_cell)
    reach = random_reach(seed, inputs[2]) if limited else None
    new = TaskAlignedAssigner(3, topk=topk)(*inputs, reach)
    old = DenseTaskAlignedAssigner(3, topk=topk)(*inputs, reach)
    torch.testing.assert_close(new.scores, old.scores, rtol=0, atol=1e-6)
    scored = old.scores.sum(-1) > 0
    assert scored.sum() >= 2 * batch  # the comparison covers real assignments
    assert torch.equal(new.foreground[scored], old.foreground[scored])
    assert torch.equal(new.boxes[scored], old.boxes[scored])
    assert torch.equal(new.labels[scored], old.labels[scored])
    assert torch.equal(new.gt_index[scored], old.gt_index[scored])
    differs = new.foreground != old.foreground
    assert not (new.scores.sum(-1)[differs].any() or old.scores.sum(-1)[differs].any())
    for result in (new, old):  # background points carry nothing
        assert result.boxes[~result.foreground].abs().sum() == 0 and result.labels[~result.foreground].sum() == 0


def raw_outputs(loss_name: str, seed: int, batch: int, nc: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    maps = []
    for h, w in ((12, 16), (6, 8), (3, 4)):  # 96 x 128 px
        shape = (batch, 3, h, w, 5 + nc) if loss_name == "anchor" else (batch, 64 + nc, h, w)
        maps.append((torch.randn(shape, generator=gen) * 1.5).requires_grad_())
    return maps


def random_targets(seed: int, batch: int, per_image: int) -> torch.Tensor:
    """(M, 6) normalised targets; image 0 empty, a third tiny, some boxes crossing the border."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for image in range(1, batch):
        for i in range(per_image):
            xy = torch.rand(2, generator=gen) * 1.1 - 0.05
            wh = torch.rand(2, generator=gen) * (0.02 if i % 3 == 0 else 0.6) + 0.005
            cls = torch.randint(0, 3, (1,), generator=gen).float()
            rows.append(torch.cat((torch.tensor([float(image)]), cls, xy, wh)))
    return torch.stack(rows) if rows else torch.zeros(0, 6)


@pytest.mark.parametrize(("loss_name", "seed", "batch", "per_image"), [
    ("dfl", 0, 2, 3), ("dfl", 1, 3, 9), ("dfl", 2, 1, 4), ("dfl", 3, 4, 25),
    ("anchor", 0, 2, 3), ("anchor", 1, 3, 9), ("anchor", 2, 1, 4), ("anchor", 3, 4, 25),
])  # fmt: skip
def test_losses_and_gradients_match_the_dense_reference(loss_name: str, seed: int, batch: int, per_image: int) -> None:
    nc = 3
    if loss_name == "dfl":
        loss = DFLLoss(DFLDetect(nc, [16, 16, 16], [8, 16, 32]), {**DFL_HYP, "label_smoothing": 0.1})
    else:
        anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
        head = AnchorDetect(nc, anchors, [8, 8, 8], [8, 16, 32])
        loss = AlignedAnchorLoss(head, {"box": 7.5, "obj": 1.0, "cls": 0.5, "label_smoothing": 0.1})
    targets = random_targets(seed, batch, per_image)
    results = []
    dense = DenseTaskAlignedAssigner(nc, topk=loss.assigner.topk, strides=(8.0, 16.0, 32.0))  # the loss's own topk
    for assigner in (loss.assigner, dense):
        loss.assigner = assigner
        maps = raw_outputs(loss_name, seed, batch, nc)
        total, items = loss(maps, targets)
        total.backward()
        results.append((total.detach(), items, [m.grad for m in maps]))
    (total_new, items_new, grads_new), (total_old, items_old, grads_old) = results
    assert total_old > 0
    torch.testing.assert_close(total_new, total_old, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(items_new, items_old, rtol=1e-6, atol=1e-6)
    for new, old in zip(grads_new, grads_old):
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)


def decoding_geometry(head: AnchorDetect, maps: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Each candidate's cell centre, anchor size and stride, (N, 2) each, read off the head's own decoding: zero
    logits decode to the centre and the anchor, a saturated offset logit to one stride further."""
    zeros = [torch.zeros_like(m[:1]) for m in maps]
    plain = head.decode(zeros)[0]
    shifted = head.decode([z.index_fill(-1, torch.tensor([0, 1]), 30.0) for z in zeros])[0]
    return plain[:, :2], plain[:, 2:4], shifted[:, :2] - plain[:, :2]


@pytest.mark.parametrize("reachable_only", [True, False])
def test_aligned_anchor_positives_are_boxes_the_head_can_decode(reachable_only: bool) -> None:
    """With `reachable_only` every positive's box is one the head's decoding can output at that candidate: the
    sigmoids that would give it lie strictly inside (0, 1), and setting them reproduces the box. Without it (the
    default) the assigner also picks candidates whose cell lies too far from the box's centre."""
    anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    head = AnchorDetect(3, anchors, [8, 8, 8], [8, 16, 32])
    hyp = {"box": 7.5, "obj": 1.0, "cls": 0.5, "label_smoothing": 0.0}
    loss = AlignedAnchorLoss(head, hyp, reachable_only=reachable_only)
    recorded = []
    assigner = loss.assigner
    loss.assigner = lambda *args: recorded.append(assigner(*args)) or recorded[-1]
    maps = raw_outputs("anchor", 3, 4, 3)
    loss(maps, random_targets(3, 4, 25))
    centre, anchor, stride = decoding_geometry(head, maps)
    result = recorded[0]
    b, n = result.foreground.nonzero(as_tuple=True)
    assert len(n) > 50
    gt = result.boxes[b, n]
    xy, wh = (gt[:, :2] + gt[:, 2:]) / 2, gt[:, 2:] - gt[:, :2]
    needed = torch.cat((((xy - centre[n]) / stride[n] + 1) / 2, (wh / anchor[n]).sqrt() / 2), -1)
    inside = ((needed > 0) & (needed < 1)).all(-1)
    if not reachable_only:
        assert not inside.all()
        return
    assert inside.all()
    logits = [torch.zeros_like(m) for m in maps]
    flat = torch.cat([m.reshape(m.shape[0], -1, m.shape[-1]) for m in logits], 1)
    flat[b, n, :4] = torch.logit(needed.double()).float()
    sizes = [m[0].numel() // m.shape[-1] for m in logits]
    decoded = head.decode([part.view_as(m) for part, m in zip(flat.split(sizes, 1), logits)])
    torch.testing.assert_close(decoded[b, n, :4], torch.cat((xy, wh), -1), rtol=1e-3, atol=1e-2)
