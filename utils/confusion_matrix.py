"""Detection confusion matrix with a background row and column, accumulated image by image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.matching import as_numpy, box_iou_numpy


class ConfusionMatrix:
    """Counts (predicted class, true class) pairs; index `nc` is background.

    `matrix[p, t]`: predictions of class p matched to targets of class t. Column `nc` holds false positives
    (predictions matching no target), row `nc` missed targets. Matching ignores classes: pairs with
    IoU >= `iou_thres` are taken in descending IoU order, each prediction and target at most once (the
    references' rule), then the pair's classes are counted. Predictions below `conf` are ignored.
    """

    def __init__(self, nc: int, conf: float = 0.25, iou_thres: float = 0.45) -> None:
        if not isinstance(nc, int) or nc < 1:
            raise ValueError(f"ConfusionMatrix: nc must be a positive int, got {nc!r}")
        self.nc, self.conf, self.iou_thres = nc, conf, iou_thres
        self.matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)

    def process_batch(self, detections: np.ndarray | torch.Tensor | None, labels: np.ndarray | torch.Tensor) -> None:
        """Add one image: detections (n, 6) x1 y1 x2 y2 conf cls, labels (m, 5) cls x1 y1 x2 y2 (same pixels)."""
        labels = as_numpy(labels).reshape(-1, 5)
        true_cls = labels[:, 0].astype(int)
        detections = np.zeros((0, 6)) if detections is None else as_numpy(detections).reshape(-1, 6)
        detections = detections[detections[:, 4] > self.conf]
        pred_cls = detections[:, 5].astype(int)
        for name, values in (("labels", true_cls), ("detections", pred_cls)):
            if len(values) and (values.min() < 0 or values.max() >= self.nc):
                raise ValueError(f"ConfusionMatrix.process_batch: {name} have class ids outside [0, {self.nc})")
        iou = box_iou_numpy(detections[:, :4], labels[:, 1:])  # (n_pred, n_true)
        pred_index, true_index = np.nonzero(iou >= self.iou_thres)
        order = np.argsort(-iou[pred_index, true_index], kind="mergesort")
        pred_used = np.zeros(len(pred_cls), dtype=bool)
        true_used = np.zeros(len(true_cls), dtype=bool)
        for p, t in zip(pred_index[order], true_index[order]):
            if pred_used[p] or true_used[t]:
                continue
            pred_used[p] = true_used[t] = True
            self.matrix[pred_cls[p], true_cls[t]] += 1
        np.add.at(self.matrix, (self.nc, true_cls[~true_used]), 1)  # missed targets: background row
        np.add.at(self.matrix, (pred_cls[~pred_used], self.nc), 1)  # false positives: background column

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """True and false positives per class (background excluded)."""
        tp = np.diag(self.matrix)[:-1]
        fp = self.matrix.sum(1)[:-1] - tp
        return tp, fp

    def normalized(self) -> np.ndarray:
        """The matrix with each column (true class) summing to 1; empty columns stay 0."""
        column_sums = self.matrix.sum(0, keepdims=True)
        return self.matrix / np.maximum(column_sums, 1)

    def plot(
        self, out_path: str | Path, names: dict[int, str] | list[str], normalize: bool = True, dpi: int | None = None
    ) -> Path:
        """Write the matrix as an image (see `utils.plots.plot_confusion_matrix`)."""
        from utils.plots import DPI, plot_confusion_matrix  # matplotlib only when plotting

        matrix = self.normalized() if normalize else self.matrix
        return plot_confusion_matrix(matrix, names, out_path, normalize, dpi=dpi or DPI)
