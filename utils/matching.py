"""Prediction-to-target matching for detection metrics (numpy, float64 IoU as pycocotools computes it)."""

from __future__ import annotations

import numpy as np
import torch

# pycocotools' thresholds, built the same way so the float values (0.6000000000000001 ...) are identical.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
MATCHING_METHODS = ("coco", "iou")


def as_numpy(array: np.ndarray | torch.Tensor | list, dtype: type = np.float64) -> np.ndarray:
    """A float64 (or `dtype`) numpy copy of a tensor, array or nested list."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def box_iou_numpy(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes in float64, (N, 4) x (M, 4) -> (N, M).

    Like pycocotools: no epsilon, and boxes that do not overlap (or have zero area) give exactly 0.
    """
    boxes1, boxes2 = as_numpy(boxes1).reshape(-1, 4), as_numpy(boxes2).reshape(-1, 4)
    width = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2]) - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    height = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3]) - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(inter > 0, inter / union, 0.0)
    return iou


def match_predictions(
    pred_classes: np.ndarray | torch.Tensor,
    true_classes: np.ndarray | torch.Tensor,
    iou_matrix: np.ndarray | torch.Tensor,
    iou_thresholds: np.ndarray | list[float] = COCO_IOU_THRESHOLDS,
    pred_scores: np.ndarray | torch.Tensor | None = None,
    method: str = "coco",
) -> np.ndarray:
    """Mark each prediction of one image as a true positive or not, at each IoU threshold.

    A prediction can only match a target of its own class with IoU >= threshold, and each target is matched at
    most once per threshold.

    Args:
        pred_classes: (n_pred,) predicted class ids.
        true_classes: (n_true,) target class ids.
        iou_matrix: (n_pred, n_true) IoU of every prediction with every target (rows are predictions).
        iou_thresholds: (T,) thresholds, by default COCO's 0.50:0.05:0.95.
        pred_scores: (n_pred,) confidences; used by "coco" to visit predictions highest first. Without them
            the predictions are taken to be sorted already (NMS output is).
        method: "coco" (default): pycocotools' greedy rule. Predictions are visited in descending score order
            (stable), and each takes, among targets of its class still unmatched at that threshold, the one with
            the highest IoU >= threshold (on equal IoU the later target, as pycocotools does).
            "iou": the YOLOv5/ultralytics rule. Every prediction proposes its highest-IoU target, and a target
            claimed by several keeps the prediction listed first (for NMS output, the most confident). Where
            objects overlap it can hand a target to a less confident prediction than pycocotools would, so its
            mAP differs (measured: 0.00 on sparse scenes, -0.002 to -0.006 mAP50-95 on crowded ones).

    Returns:
        (n_pred, T) bool array, True where the prediction is a true positive at that threshold.
    """
    if method not in MATCHING_METHODS:
        raise ValueError(f"match_predictions: method must be one of {MATCHING_METHODS}, got {method!r}")
    pred_classes, true_classes = as_numpy(pred_classes).reshape(-1), as_numpy(true_classes).reshape(-1)
    thresholds = as_numpy(iou_thresholds).reshape(-1)
    iou = as_numpy(iou_matrix)
    n_pred, n_true = len(pred_classes), len(true_classes)
    if iou.size == 0:
        iou = iou.reshape(n_pred, n_true)
    if iou.shape != (n_pred, n_true):
        raise ValueError(
            f"match_predictions: iou_matrix has shape {iou.shape}, expected (n_pred, n_true) = ({n_pred}, {n_true}); "
            "rows are predictions, columns targets"
        )
    correct = np.zeros((n_pred, len(thresholds)), dtype=bool)
    if n_pred == 0 or n_true == 0:
        return correct
    # -1 where classes differ, so no threshold in [0, 1] can match across classes.
    iou = np.where(pred_classes[:, None] == true_classes[None, :], iou, -1.0)
    if method == "iou":
        return _match_by_iou(iou, thresholds, correct)
    if pred_scores is None:
        order = np.arange(n_pred)
    else:
        order = np.argsort(-as_numpy(pred_scores).reshape(-1), kind="mergesort")
    return _match_greedy_by_score(iou, thresholds, order, correct)


def _match_greedy_by_score(
    iou: np.ndarray, thresholds: np.ndarray, order: np.ndarray, correct: np.ndarray
) -> np.ndarray:
    """pycocotools' rule, vectorised over thresholds; only predictions that can match at all are visited."""
    n_true = iou.shape[1]
    taken = np.zeros((len(thresholds), n_true), dtype=bool)
    candidates = order[iou[order].max(1) >= thresholds.min()]
    reversed_columns = np.arange(n_true)[::-1]
    for pred in candidates:
        row = iou[pred]
        allowed = (row[None, :] >= thresholds[:, None]) & ~taken  # (T, n_true)
        hit = allowed.any(1)
        if not hit.any():
            continue
        values = np.where(allowed, row[None, :], -np.inf)[:, ::-1]
        best = reversed_columns[values.argmax(1)]  # last column holding the maximum
        correct[pred, hit] = True
        taken[hit, best[hit]] = True
    return correct


def _match_by_iou(iou: np.ndarray, thresholds: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """YOLOv5/ultralytics rule: best target per prediction, then the first-listed prediction per target."""
    for t, threshold in enumerate(thresholds):
        pred_index, true_index = np.nonzero(iou >= threshold)
        if not len(pred_index):
            continue
        by_iou = np.argsort(-iou[pred_index, true_index], kind="mergesort")
        pred_index, true_index = pred_index[by_iou], true_index[by_iou]
        _, first = np.unique(pred_index, return_index=True)  # each prediction's highest-IoU target
        pred_index, true_index = pred_index[first], true_index[first]  # now ordered by prediction index
        _, first = np.unique(true_index, return_index=True)  # each target keeps the first-listed prediction
        correct[pred_index[first], t] = True
    return correct
