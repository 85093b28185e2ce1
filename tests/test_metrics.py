"""Matching, AP, the metrics accumulator and the confusion matrix on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils.metrics import (
    COCO_IOU_THRESHOLDS,
    ConfusionMatrix,
    DetectionMetrics,
    ap_per_class,
    box_iou_numpy,
    compute_ap,
    format_metrics_table,
    match_predictions,
)


def test_iou_thresholds_are_pycocotools():
    assert len(COCO_IOU_THRESHOLDS) == 10 and COCO_IOU_THRESHOLDS[0] == 0.5 and COCO_IOU_THRESHOLDS[-1] == 0.95


def test_box_iou_numpy_hand_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 5], [5, 5, 15, 15], [10, 0, 20, 10], [3, 3, 3, 8]])
    np.testing.assert_array_equal(box_iou_numpy(a, b), [[0.5, 25 / 175, 0.0, 0.0]])  # touching and empty boxes: 0


def test_one_prediction_two_targets_takes_the_better_one():
    # IoU 0.6 with target 0, 0.8 with target 1: matched to target 1, so it is correct up to threshold 0.8.
    iou = np.array([[0.6, 0.8]])
    correct = match_predictions(np.array([0]), np.array([0, 0]), iou, COCO_IOU_THRESHOLDS)
    np.testing.assert_array_equal(correct[0], COCO_IOU_THRESHOLDS <= 0.8)
    # Same with real boxes: the prediction sits on the second target.
    targets = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    prediction = np.array([[20, 0, 30, 9]], float)  # IoU 0.9 with target 1, 0 with target 0
    correct = match_predictions([0], [0, 0], box_iou_numpy(prediction, targets))
    np.testing.assert_array_equal(correct[0], COCO_IOU_THRESHOLDS <= 0.9)


def test_duplicate_predictions_only_the_most_confident_counts():
    iou = np.array([[0.7], [0.95]])  # the second is better placed but less confident
    scores = np.array([0.9, 0.3])
    correct = match_predictions([1, 1], [1], iou, COCO_IOU_THRESHOLDS, pred_scores=scores)
    np.testing.assert_array_equal(correct[0], COCO_IOU_THRESHOLDS <= 0.7)
    # Above 0.7 the confident one cannot match, so the target is still free for the second.
    np.testing.assert_array_equal(correct[1], COCO_IOU_THRESHOLDS > 0.7)
    # Order comes from the scores, not the row order.
    flipped = match_predictions([1, 1], [1], iou[::-1], COCO_IOU_THRESHOLDS, pred_scores=scores[::-1])
    np.testing.assert_array_equal(flipped, correct[::-1])


def test_class_mismatch_never_matches():
    correct = match_predictions([2], [1], np.array([[1.0]]), COCO_IOU_THRESHOLDS)
    assert not correct.any()
    for method in ("coco", "iou"):
        correct = match_predictions([1, 2], [2, 1], np.array([[1.0, 0.0], [0.0, 1.0]]), method=method)
        assert not correct.any()


def test_iou_exactly_at_threshold_matches():
    target = np.array([[0, 0, 10, 10]], float)
    prediction = np.array([[0, 0, 10, 5]], float)  # IoU exactly 0.5 in floating point
    iou = box_iou_numpy(prediction, target)
    assert iou[0, 0] == 0.5
    for method in ("coco", "iou"):
        correct = match_predictions([0], [0], iou, [0.5, 0.5 + 1e-12], method=method)
        np.testing.assert_array_equal(correct, [[True, False]])


def test_coco_greedy_falls_back_to_second_best_target_iou_rule_does_not():
    # Prediction 0 (confident) fits target B only; prediction 1 prefers B (0.8) but also fits A (0.6).
    iou = np.array([[0.0, 0.9], [0.6, 0.8]])
    coco = match_predictions([0, 0], [0, 0], iou, [0.5], pred_scores=[0.9, 0.5], method="coco")
    reference_rule = match_predictions([0, 0], [0, 0], iou, [0.5], method="iou")
    np.testing.assert_array_equal(coco[:, 0], [True, True])
    np.testing.assert_array_equal(reference_rule[:, 0], [True, False])


def test_match_predictions_empty_and_bad_shapes():
    assert match_predictions([], [0, 1], np.zeros((0, 2))).shape == (0, 10)
    assert not match_predictions([0, 1], [], np.zeros((2, 0))).any()
    with pytest.raises(ValueError, match="rows are predictions"):
        match_predictions([0, 0, 0], [0, 0], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="method"):
        match_predictions([0], [0], np.ones((1, 1)), method="greedy")


def test_compute_ap_hand_values():
    # 2 targets; predictions TP, FP, TP: recall .5 .5 1, precision 1 .5 .667; envelope 1 .667 .667.
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    # COCO: recall points 0..0.50 (51) read 1, 0.51..1.00 (50) read 2/3.
    assert compute_ap(recall, precision, "coco") == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-9)
    # Reference rule: area 0.5 + 0.5 * 2/3, less half a 0.01 grid step at the two drops (at recall .5 and 1).
    assert compute_ap(recall, precision, "interp") == pytest.approx(0.5 + 0.5 * 2 / 3 - 0.005 * (1 / 3 + 2 / 3))
    # Recall never past 0.5: COCO reads 0 beyond it; the reference rule slopes to (1, 0).
    assert compute_ap(np.array([0.5]), np.array([1.0]), "coco") == pytest.approx(51 / 101)
    assert compute_ap(np.array([0.5]), np.array([1.0]), "interp") == pytest.approx(0.75)
    assert compute_ap(np.zeros(0), np.zeros(0)) == 0.0


def test_ap_per_class_only_classes_with_targets():
    tp = np.array([[True], [False], [True], [False]])
    conf = np.array([0.9, 0.8, 0.7, 0.95])
    pred_cls = np.array([0, 0, 0, 5])  # class 5 has no targets: no row, no effect
    result = ap_per_class(tp, conf, pred_cls, target_cls=np.array([0, 0, 1]))
    np.testing.assert_array_equal(result.classes, [0, 1])
    np.testing.assert_array_equal(result.n_targets, [2, 1])
    assert result.ap[0, 0] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert result.ap[1, 0] == 0.0  # targets but no predictions
    assert result.p_curve.shape == result.r_curve.shape == result.f1_curve.shape == result.pr_curve.shape == (2, 1000)
    assert 0 <= result.best_confidence <= 1


def _boxes_case() -> tuple[list[np.ndarray], list[np.ndarray]]:
    labels = [
        np.array([[0, 10, 10, 50, 50], [1, 60, 60, 100, 120]], float),
        np.array([[0, 0, 0, 30, 30]], float),
        np.zeros((0, 5)),
    ]
    perfect = [np.concatenate((lab[:, 1:], np.full((len(lab), 1), 0.9), lab[:, :1]), 1) for lab in labels]
    return labels, perfect


def test_detection_metrics_perfect_and_empty():
    labels, perfect = _boxes_case()
    metrics = DetectionMetrics(["a", "b", "c"])
    for p, lab in zip(perfect, labels):
        metrics.update(torch.from_numpy(p), torch.from_numpy(lab))  # tensors are accepted
    result = metrics.compute()
    assert result["map50"] == pytest.approx(1.0) and result["map50_95"] == pytest.approx(1.0)
    assert result["precision"] == pytest.approx(1.0) and result["recall"] == pytest.approx(1.0)
    assert result["fitness"] == pytest.approx(1.0)
    assert result["images"] == 3 and result["instances"] == 3
    assert [(c["class"], c["images"], c["instances"]) for c in result["per_class"]] == [(0, 2, 2), (1, 1, 1)]

    metrics.reset()
    for lab in labels:
        metrics.update(None, lab)
    result = metrics.compute()
    assert result["map50"] == result["map50_95"] == result["precision"] == result["recall"] == 0.0

    metrics.reset()
    result = metrics.compute()  # nothing seen at all
    assert result["map50_95"] == 0.0 and result["per_class"] == []


def test_detection_metrics_mixed_hand_checked():
    labels = [np.array([[0, 0, 0, 10, 10], [0, 20, 0, 30, 10]], float)]
    predictions = [
        np.array(
            [
                [0, 0, 10, 10, 0.9, 0],  # TP, IoU 1
                [20, 0, 30, 10, 0.8, 1],  # wrong class: FP for class 1, which has no targets (ignored)
                [20, 0, 30, 5, 0.7, 0],  # IoU 0.5 exactly with target 1: TP at 0.5 only
            ]
        )
    ]
    metrics = DetectionMetrics({0: "a", 1: "b"})
    metrics.update(predictions[0], labels[0])
    result = metrics.compute()
    # Class 0 at IoU .5: TP, TP -> AP 1; at .55..0.95: TP, FP -> recall stays .5, AP 51/101.
    expected_map50_95 = (1 + 9 * 51 / 101) / 10
    assert result["map50"] == pytest.approx(1.0)
    assert result["map50_95"] == pytest.approx(expected_map50_95)
    assert result["fitness"] == pytest.approx(0.1 * 1.0 + 0.9 * expected_map50_95)
    assert [c["class"] for c in result["per_class"]] == [0]


def test_max_det_per_class_cap():
    target = np.array([[0, 0, 0, 10, 10]], float)
    # 3 false positives scored above the true one: with a cap of 3 per class the true one is dropped.
    predictions = np.array(
        [
            [50, 50, 60, 60, 0.9, 0],
            [70, 70, 80, 80, 0.8, 0],
            [90, 90, 99, 99, 0.7, 0],
            [0, 0, 10, 10, 0.6, 0],
            [0, 0, 10, 10, 0.99, 1],
        ],
        float,
    )
    capped, uncapped = (
        DetectionMetrics(["a", "b"], max_det_per_class=3),
        DetectionMetrics(["a", "b"], max_det_per_class=None),
    )
    for metrics in (capped, uncapped):
        metrics.update(predictions, target)
    assert capped.compute()["map50"] == 0.0
    assert uncapped.compute()["map50"] == pytest.approx(0.25)  # recall 1 reached at precision 1/4


def test_detection_metrics_bad_input():
    metrics = DetectionMetrics(["a", "b"])
    with pytest.raises(ValueError, match="predictions must be"):
        metrics.update(np.zeros((2, 5)), np.zeros((0, 5)))
    with pytest.raises(ValueError, match="labels must be"):
        metrics.update(None, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="outside 0..1"):
        metrics.update(None, np.array([[2, 0, 0, 1, 1]]))
    with pytest.raises(ValueError, match="matching"):
        DetectionMetrics(["a"], matching="hungarian")
    with pytest.raises(ValueError, match="start at 0.5"):
        DetectionMetrics(["a"], iou_thresholds=[0.3, 0.5])


def test_table_layout():
    labels, perfect = _boxes_case()
    metrics = DetectionMetrics(["person", "car", "dog"])
    for p, lab in zip(perfect, labels):
        metrics.update(p, lab)
    lines = metrics.table().splitlines()
    assert lines[0].split() == ["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]
    assert lines[1].split() == ["all", "3", "3", "1", "1", "1", "1"]
    assert [line.split()[0] for line in lines[2:]] == ["person", "car"]
    assert len(format_metrics_table(metrics.compute(), per_class=False).splitlines()) == 2


def test_confusion_matrix_counts():
    matrix = ConfusionMatrix(nc=3)
    labels = np.array([[0, 0, 0, 10, 10], [1, 20, 20, 30, 30], [2, 50, 50, 60, 60]], float)
    detections = np.array(
        [
            [0, 0, 10, 10, 0.9, 0],  # correct
            [20, 20, 30, 30, 0.8, 2],  # class 1 predicted as 2
            [80, 80, 90, 90, 0.7, 1],  # false positive
            [50, 50, 60, 60, 0.1, 2],  # below conf 0.25: ignored, so target 2 is missed
        ]
    )
    matrix.process_batch(detections, labels)
    expected = np.zeros((4, 4), int)
    expected[0, 0] = 1
    expected[2, 1] = 1
    expected[1, 3] = 1  # background column: false positive of class 1
    expected[3, 2] = 1  # background row: missed class 2
    np.testing.assert_array_equal(matrix.matrix, expected)
    np.testing.assert_array_equal(matrix.tp_fp()[0], [1, 0, 0])
    np.testing.assert_array_equal(matrix.tp_fp()[1], [0, 1, 1])
    column_sums = matrix.normalized().sum(0)
    np.testing.assert_allclose(column_sums, [1, 1, 1, 1])
    matrix.process_batch(None, labels[:1])
    assert matrix.matrix[3, 0] == 1
