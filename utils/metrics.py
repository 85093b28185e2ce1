"""Detection metrics: P, R, mAP50, mAP50-95 per class and overall, consistent with pycocotools by default.

How the default matches pycocotools (bbox, area "all", maxDets=100), which `tests/test_coco_parity.py` checks:
- per image and class, only the 100 highest-scoring predictions count (`max_det_per_class=100`; None = no cap);
- predictions are matched greedily in descending score order, each to the unmatched same-class target of highest
  IoU >= threshold (`match_predictions(method="coco")`); IoU in float64 without epsilon;
- AP per class and threshold is the mean of the precision envelope at recall 0:0.01:1 (`compute_ap("coco")`),
  classes without targets are left out of every mean, thresholds 0.50:0.05:0.95.
Our labels have no crowd flag and no area range applies, so pycocotools' ignore rules never trigger.
`matching="iou"` and `ap_method="interp"` give the YOLOv5/ultralytics rules instead.
P and R are read, as the references do, at the confidence where the class-mean F1 (smoothed) peaks, IoU 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.average_precision import AP_METHODS, APResult, ap_per_class, compute_ap
from utils.confusion_matrix import ConfusionMatrix
from utils.matching import COCO_IOU_THRESHOLDS, MATCHING_METHODS, as_numpy, box_iou_numpy, match_predictions

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "APResult",
    "ConfusionMatrix",
    "DetectionMetrics",
    "ap_per_class",
    "box_iou_numpy",
    "compute_ap",
    "fitness",
    "format_metrics_table",
    "match_predictions",
]


def fitness(map50: float, map50_95: float) -> float:
    """Model selection score: 0.1 * mAP50 + 0.9 * mAP50-95."""
    return 0.1 * map50 + 0.9 * map50_95


def names_to_dict(names: dict[int, str] | list[str] | tuple[str, ...]) -> dict[int, str]:
    """Class names as {id: name}."""
    return dict(names) if isinstance(names, dict) else dict(enumerate(names))


class DetectionMetrics:
    """Accumulates one image at a time, then `compute()` gives the data set's metrics.

    Args:
        names: class names ({id: name} or a list); defines nc.
        iou_thresholds: by default COCO's 0.50:0.05:0.95 (the first must be 0.5 for mAP50 and P/R).
        matching: "coco" (default) or "iou" (YOLOv5/ultralytics), see `match_predictions`.
        ap_method: "coco" (default, 101-point) or "interp" (YOLOv5/ultralytics trapezoid), see `compute_ap`.
        max_det_per_class: keep at most this many predictions per image and class (pycocotools' maxDets=100);
            None keeps all (the NMS max_det then is the only cap, as in the references' own metric).
        confusion_conf, confusion_iou: thresholds of the accumulated `confusion_matrix`.
    """

    def __init__(
        self,
        names: dict[int, str] | list[str],
        iou_thresholds: np.ndarray | list[float] = COCO_IOU_THRESHOLDS,
        matching: str = "coco",
        ap_method: str = "coco",
        max_det_per_class: int | None = 100,
        confusion_conf: float = 0.25,
        confusion_iou: float = 0.45,
    ) -> None:
        self.names = names_to_dict(names)
        self.nc = len(self.names)
        if matching not in MATCHING_METHODS:
            raise ValueError(f"DetectionMetrics: matching must be one of {MATCHING_METHODS}, got {matching!r}")
        if ap_method not in AP_METHODS:
            raise ValueError(f"DetectionMetrics: ap_method must be one of {AP_METHODS}, got {ap_method!r}")
        if max_det_per_class is not None and max_det_per_class < 1:
            raise ValueError(f"DetectionMetrics: max_det_per_class must be >= 1 or None, got {max_det_per_class}")
        self.iou_thresholds = as_numpy(iou_thresholds).reshape(-1)
        if not len(self.iou_thresholds) or abs(self.iou_thresholds[0] - 0.5) > 1e-9:
            raise ValueError(f"DetectionMetrics: iou_thresholds must start at 0.5, got {self.iou_thresholds}")
        self.matching, self.ap_method, self.max_det_per_class = matching, ap_method, max_det_per_class
        self.confusion_matrix = ConfusionMatrix(self.nc, conf=confusion_conf, iou_thres=confusion_iou)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._target_cls: list[np.ndarray] = []
        self._images_per_class = np.zeros(self.nc, dtype=np.int64)
        self.seen = 0
        self.ap_result: APResult | None = None
        self.confusion_matrix.matrix[:] = 0

    def update(self, predictions: np.ndarray | torch.Tensor | None, labels: np.ndarray | torch.Tensor) -> None:
        """Add one image.

        Args:
            predictions: (n, 6) x1 y1 x2 y2 conf cls, in original-image pixels (None or empty: no predictions).
            labels: (m, 5) cls x1 y1 x2 y2 in the same pixels.
        """
        predictions = np.zeros((0, 6)) if predictions is None else as_numpy(predictions)
        labels = as_numpy(labels)
        if predictions.size == 0:
            predictions = predictions.reshape(0, 6)
        if labels.size == 0:
            labels = labels.reshape(0, 5)
        if predictions.ndim != 2 or predictions.shape[1] != 6:
            raise ValueError(
                f"DetectionMetrics.update: predictions must be (n, 6) xyxy conf cls, got {predictions.shape}"
            )
        if labels.ndim != 2 or labels.shape[1] != 5:
            raise ValueError(f"DetectionMetrics.update: labels must be (m, 5) cls xyxy, got {labels.shape}")
        true_cls, pred_cls = labels[:, 0], predictions[:, 5]
        for name, values in (("labels", true_cls), ("predictions", pred_cls)):
            if len(values) and (values.min() < 0 or values.max() >= self.nc or np.any(values != np.round(values))):
                raise ValueError(
                    f"DetectionMetrics.update: {name} have class ids outside 0..{self.nc - 1} "
                    f"(nc={self.nc} from names): {np.unique(values)[:10]}"
                )
        self.confusion_matrix.process_batch(predictions, labels)
        predictions = predictions[np.argsort(-predictions[:, 4], kind="mergesort")]
        if self.max_det_per_class is not None and len(predictions) > self.max_det_per_class:
            predictions = predictions[self._within_class_cap(predictions[:, 5])]
        iou = box_iou_numpy(predictions[:, :4], labels[:, 1:])
        tp = match_predictions(predictions[:, 5], true_cls, iou, self.iou_thresholds, method=self.matching)
        self._tp.append(tp)
        self._conf.append(predictions[:, 4])
        self._pred_cls.append(predictions[:, 5].astype(int))
        self._target_cls.append(true_cls.astype(int))
        self._images_per_class[np.unique(true_cls.astype(int))] += 1
        self.seen += 1

    def _within_class_cap(self, classes: np.ndarray) -> np.ndarray:
        """Mask of score-sorted predictions that are among the first `max_det_per_class` of their class."""
        order = np.argsort(classes, kind="stable")  # grouped by class, score order kept inside each group
        sorted_classes = classes[order]
        starts = np.flatnonzero(np.r_[True, sorted_classes[1:] != sorted_classes[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(classes)]))
        rank = np.empty(len(classes), dtype=np.int64)
        rank[order] = np.arange(len(classes)) - group_start
        return rank < self.max_det_per_class

    def compute(self) -> dict:
        """Metrics over everything accumulated.

        Returns:
            dict with precision, recall, map50, map50_95, fitness (class means over classes that have targets),
            images (seen), instances, and per_class: a list of dicts (class, name, images, instances, precision,
            recall, f1, map50, map50_95) for every class with targets.
        """
        if self._tp:
            tp, conf = np.concatenate(self._tp), np.concatenate(self._conf)
            pred_cls, target_cls = np.concatenate(self._pred_cls), np.concatenate(self._target_cls)
        else:
            tp, conf = np.zeros((0, len(self.iou_thresholds)), bool), np.zeros(0)
            pred_cls, target_cls = np.zeros(0, int), np.zeros(0, int)
        result = ap_per_class(tp, conf, pred_cls, target_cls, method=self.ap_method)
        self.ap_result = result
        per_class = [
            {
                "class": int(cls),
                "name": self.names.get(int(cls), str(cls)),
                "images": int(self._images_per_class[cls]),
                "instances": int(result.n_targets[i]),
                "precision": float(result.precision[i]),
                "recall": float(result.recall[i]),
                "f1": float(result.f1[i]),
                "map50": float(result.ap[i, 0]),
                "map50_95": float(result.ap[i].mean()),
            }
            for i, cls in enumerate(result.classes)
        ]

        def mean(values: np.ndarray) -> float:
            return float(values.mean()) if len(values) else 0.0

        map50, map50_95 = mean(result.ap[:, 0]), mean(result.ap.mean(1))
        return {
            "precision": mean(result.precision),
            "recall": mean(result.recall),
            "map50": map50,
            "map50_95": map50_95,
            "fitness": fitness(map50, map50_95),
            "images": self.seen,
            "instances": len(target_cls),
            "per_class": per_class,
        }

    def table(self, results: dict | None = None, per_class: bool = True) -> str:
        """The printable table (Class, Images, Instances, P, R, mAP50, mAP50-95) of `results` or `compute()`."""
        return format_metrics_table(results if results is not None else self.compute(), per_class)

    def plot(self, save_dir: str | Path, prefix: str = "", dpi: int | None = None) -> list[Path]:
        """Write PR, F1, P and R curves and the confusion matrices (plain and normalised) into `save_dir`.

        The files are PR_curve.png, F1_curve.png, P_curve.png, R_curve.png, confusion_matrix.png and
        confusion_matrix_normalized.png (with `prefix` in front); dpi defaults to `utils.plots.DPI`.
        """
        from utils.plots import DPI, plot_metric_curve, plot_pr_curve  # matplotlib only when plotting

        dpi = dpi or DPI
        if self.ap_result is None:
            self.compute()
        result, save_dir = self.ap_result, Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        labels = [self.names.get(int(c), str(c)) for c in result.classes]
        paths = [
            plot_pr_curve(result.x, result.pr_curve, result.ap[:, 0], labels, save_dir / f"{prefix}PR_curve.png", dpi)
        ]
        for curve, ylabel, stem in (
            (result.f1_curve, "F1", "F1_curve"),
            (result.p_curve, "Precision", "P_curve"),
            (result.r_curve, "Recall", "R_curve"),
        ):
            paths.append(
                plot_metric_curve(result.x, curve, labels, save_dir / f"{prefix}{stem}.png", ylabel=ylabel, dpi=dpi)
            )
        names = [self.names[i] for i in range(self.nc)]
        paths.append(
            self.confusion_matrix.plot(save_dir / f"{prefix}confusion_matrix_normalized.png", names, True, dpi)
        )
        paths.append(self.confusion_matrix.plot(save_dir / f"{prefix}confusion_matrix.png", names, False, dpi))
        return paths


def format_metrics_table(results: dict, per_class: bool = True) -> str:
    """Rows `all` and (optionally) one per class, aligned like the references' validation printout."""
    header = ("Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95")
    lines = [("%22s" + "%11s" * 6) % header]
    row = "%22s" + "%11i" * 2 + "%11.3g" * 4
    lines.append(
        row
        % (
            "all",
            results["images"],
            results["instances"],
            results["precision"],
            results["recall"],
            results["map50"],
            results["map50_95"],
        )
    )
    if per_class:
        for entry in results["per_class"]:
            lines.append(
                row
                % (
                    entry["name"][:22],
                    entry["images"],
                    entry["instances"],
                    entry["precision"],
                    entry["recall"],
                    entry["map50"],
                    entry["map50_95"],
                )
            )
    return "\n".join(lines)
