"""Average precision per class from matched predictions, and the P/R/F1 curves the plots draw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# pycocotools' 101 recall thresholds 0.00:0.01:1.00.
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round(1.0 / 0.01)) + 1, endpoint=True)
AP_METHODS = ("coco", "interp")
CURVE_POINTS = 1000  # resolution of the confidence and recall axes of the plotted curves


@dataclass
class APResult:
    """Per-class results of `ap_per_class`; row i of every array is class `classes[i]`.

    precision, recall, f1: (nc,) at the single confidence where the class-mean F1 peaks (IoU 0.5).
    ap: (nc, T) average precision at each IoU threshold. n_targets: (nc,) instances per class.
    x: (1000,) the curves' x axis (confidence for p/r/f1_curve, recall for pr_curve), curves (nc, 1000);
    pr_curve is the precision envelope at IoU 0.5 read as pycocotools reads it (0 past the last recall).
    """

    classes: np.ndarray
    n_targets: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    ap: np.ndarray
    x: np.ndarray
    p_curve: np.ndarray
    r_curve: np.ndarray
    f1_curve: np.ndarray
    pr_curve: np.ndarray
    best_confidence: float


def _envelope_at(recall: np.ndarray, precision: np.ndarray, points: np.ndarray) -> np.ndarray:
    """pycocotools' reading of a PR curve: the envelope precision at the first point reaching each recall, 0 past
    the last one."""
    if not len(recall):
        return np.zeros(len(points))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, points, side="left")
    return np.where(index < len(recall), envelope[np.minimum(index, len(recall) - 1)], 0.0)


def compute_ap(recall: np.ndarray, precision: np.ndarray, method: str = "coco") -> float:
    """Area under one precision-recall curve (points in descending-confidence order).

    "coco": pycocotools' 101-point rule: take the precision envelope (max precision at any higher recall), read it
    at recall 0, 0.01, ..., 1 (the first point whose recall reaches each threshold; 0 past the largest recall),
    and average the 101 values.
    "interp": the YOLOv5/ultralytics rule: pad the curve with (0, 1) and (1, 0), take the envelope, interpolate
    it linearly at 101 recall points and integrate with the trapezoid rule.
    """
    if method not in AP_METHODS:
        raise ValueError(f"compute_ap: method must be one of {AP_METHODS}, got {method!r}")
    recall, precision = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    if method == "coco":
        return float(_envelope_at(recall, precision, COCO_RECALL_THRESHOLDS).mean()) if len(recall) else 0.0
    padded_recall = np.concatenate(([0.0], recall, [1.0]))
    envelope = np.maximum.accumulate(np.concatenate(([1.0], precision, [0.0]))[::-1])[::-1]
    grid = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(grid, padded_recall, envelope), grid))


def smooth(values: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Box-filter smoothing over `fraction` of the points, edges padded with the end values."""
    width = round(len(values) * fraction * 2) // 2 + 1  # odd
    padded = np.concatenate((np.full(width // 2, values[0]), values, np.full(width // 2, values[-1])))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def ap_per_class(
    tp: np.ndarray,
    conf: np.ndarray,
    pred_cls: np.ndarray,
    target_cls: np.ndarray,
    method: str = "coco",
    eps: float = 1e-16,
) -> APResult:
    """AP per class at each IoU threshold, and P, R, F1 at the confidence of best mean F1.

    Args:
        tp: (n, T) bool, prediction i is a true positive at threshold t (from `match_predictions`).
        conf, pred_cls: (n,) confidence and class of every prediction of the whole data set.
        target_cls: (m,) class of every target of the whole data set.
        method: AP rule of `compute_ap` ("coco" by default).

    Only classes with at least one target get a row (as pycocotools and the references do): predictions of a
    class without targets do not enter any mean. Predictions are ranked by confidence with a stable sort, so
    equal scores keep the order they were given in (pycocotools: image order, then score order per image).
    """
    tp = np.asarray(tp, dtype=bool)
    tp = tp[:, None] if tp.ndim == 1 else tp
    conf, pred_cls = np.asarray(conf, dtype=np.float64).reshape(-1), np.asarray(pred_cls).reshape(-1)
    if tp.ndim != 2 or not len(tp) == len(conf) == len(pred_cls):
        raise ValueError(
            f"ap_per_class: tp {tp.shape}, conf {conf.shape} and pred_cls {pred_cls.shape} "
            "must have one row per prediction"
        )
    order = np.argsort(-conf, kind="mergesort")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_targets = np.unique(np.asarray(target_cls).reshape(-1), return_counts=True)
    nc, n_thresholds = len(classes), tp.shape[1]
    x = np.linspace(0, 1, CURVE_POINTS)
    ap = np.zeros((nc, n_thresholds))
    p_curve, r_curve, pr_curve = (
        np.zeros((nc, CURVE_POINTS)),
        np.zeros((nc, CURVE_POINTS)),
        np.zeros((nc, CURVE_POINTS)),
    )
    for ci, cls in enumerate(classes):
        mask = pred_cls == cls
        if not mask.any():
            continue
        tp_cum = tp[mask].cumsum(0)
        fp_cum = (~tp[mask]).cumsum(0)
        recall = tp_cum / n_targets[ci]
        precision = tp_cum / (tp_cum + fp_cum + np.spacing(1))  # pycocotools' denominator
        for t in range(n_thresholds):
            ap[ci, t] = compute_ap(recall[:, t], precision[:, t], method)
        # Curves at IoU 0.5 against confidence; x decreases along the predictions, hence the negations.
        r_curve[ci] = np.interp(-x, -conf[mask], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-x, -conf[mask], precision[:, 0], left=1)
        pr_curve[ci] = _envelope_at(recall[:, 0], precision[:, 0], x)
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    best = int(smooth(f1_curve.mean(0), 0.1).argmax()) if nc else 0
    return APResult(
        classes=classes.astype(int),
        n_targets=n_targets,
        precision=p_curve[:, best],
        recall=r_curve[:, best],
        f1=f1_curve[:, best],
        ap=ap,
        x=x,
        p_curve=p_curve,
        r_curve=r_curve,
        f1_curve=f1_curve,
        pr_curve=pr_curve,
        best_confidence=float(x[best]),
    )
