"""Plots written by training and validation: curves, confusion matrix, batch mosaics, label statistics, results.

Figures are drawn with matplotlib's object API on an Agg canvas (no pyplot, no display, no global backend
switch), so plotting works on servers and from threads. Every function returns the path it wrote.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.annotate import class_color, draw_detections
from utils.boxes import xywh_to_xyxy

DPI = 200  # figure sizes are in inches: a 9 x 6 in curve is 1800 x 1200 px
MAX_LEGEND_CLASSES = 20  # above this, per-class lines are grey and unlabelled


def _figure(width: float, height: float, rows: int = 1, cols: int = 1) -> tuple[Figure, np.ndarray]:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def _save(figure: Figure, out_path: str | Path, dpi: int) -> Path:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=dpi)
    return out_path


def _rgb(class_id: int) -> tuple[float, float, float]:
    """The class's palette colour (annotate.py's, BGR there) as matplotlib RGB."""
    blue, green, red = class_color(class_id)
    return red / 255, green / 255, blue / 255


def _names_list(names: dict[int, str] | Sequence[str]) -> list[str]:
    return [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)


def plot_pr_curve(
    recall: np.ndarray,
    precision: np.ndarray,
    ap50: np.ndarray,
    names: Sequence[str],
    out_path: str | Path,
    dpi: int = DPI,
) -> Path:
    """Precision against recall at IoU 0.5, one line per class (precision (nc, k) at `recall` (k,)) and the mean."""
    mean_ap50 = f"all classes {np.mean(ap50):.3f} mAP@0.5" if len(ap50) else ""
    return _plot_class_curves(
        recall,
        precision,
        lambda i: f"{names[i]} {ap50[i]:.3f}",
        lambda _mean: mean_ap50,
        "Recall",
        "Precision",
        "Precision-Recall Curve",
        out_path,
        dpi,
    )


def plot_metric_curve(
    confidence: np.ndarray,
    values: np.ndarray,
    names: Sequence[str],
    out_path: str | Path,
    xlabel: str = "Confidence",
    ylabel: str = "Metric",
    dpi: int = DPI,
) -> Path:
    """A metric (F1, precision, recall) against confidence, one line per class and the class mean."""

    def mean_label(mean: np.ndarray) -> str:
        best = int(mean.argmax())
        return f"all classes {mean[best]:.2f} at {confidence[best]:.3f}"

    return _plot_class_curves(
        confidence, values, lambda i: names[i], mean_label, xlabel, ylabel, f"{ylabel}-{xlabel} Curve", out_path, dpi
    )


def _plot_class_curves(
    x: np.ndarray,
    curves: np.ndarray,
    class_label: Callable[[int], str],
    mean_label: Callable[[np.ndarray], str],
    xlabel: str,
    ylabel: str,
    title: str,
    out_path: str | Path,
    dpi: int,
) -> Path:
    """Curves (nc, k) at `x` (k,) on [0, 1] axes: one thin line per class (labelled up to MAX_LEGEND_CLASSES
    classes, grey beyond) and a thick line of the class mean, labelled `mean_label(mean)`."""
    figure, axes = _figure(9, 6)
    ax = axes[0, 0]
    curves = np.asarray(curves).reshape(-1, len(x))
    labelled = len(curves) <= MAX_LEGEND_CLASSES
    for i, row in enumerate(curves):
        ax.plot(x, row, linewidth=1, **({"label": class_label(i)} if labelled else {"color": "grey"}))
    if len(curves):
        mean = curves.mean(0)
        ax.plot(x, mean, linewidth=3, color="blue", label=mean_label(mean))
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize="small")
    figure.subplots_adjust(left=0.08, right=0.7, bottom=0.1, top=0.92)
    return _save(figure, out_path, dpi)


def plot_confusion_matrix(
    matrix: np.ndarray,
    names: dict[int, str] | Sequence[str],
    out_path: str | Path,
    normalize: bool = True,
    dpi: int = DPI,
) -> Path:
    """Heat map of an (nc + 1, nc + 1) matrix, rows predicted, columns true, last row/column background."""
    labels = [*_names_list(names), "background"]
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"plot_confusion_matrix: matrix {matrix.shape} does not fit {len(labels) - 1} class names")
    figure, axes = _figure(12, 9)
    ax = axes[0, 0]
    shown = np.where(matrix < 0.005, np.nan, matrix)  # empty cells stay white
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if len(labels) < 30:
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
        for (row, col), value in np.ndenumerate(matrix):
            if value >= 0.005:
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                color = "white" if normalize and value > 0.5 else "black"
                ax.text(col, row, text, ha="center", va="center", fontsize=8, color=color)
    ax.set(xlabel="True", ylabel="Predicted", title="Confusion Matrix" + (" (normalised)" if normalize else ""))
    figure.subplots_adjust(left=0.15, right=0.95, bottom=0.18, top=0.94)
    return _save(figure, out_path, dpi)


def _to_numpy(array: torch.Tensor | np.ndarray) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def mosaic_shape(
    batch: int, height: int, width: int, max_size: int = 1920, max_subplots: int = 16
) -> tuple[int, int, int, int]:
    """(mosaic height, mosaic width, tile height, tile width) of `plot_batch` for a batch of (height, width) images.

    Tiles fill a square grid row by row (ceil(sqrt(n)) columns); rows left empty are cut off.
    """
    count = max(1, min(batch, max_subplots))
    grid = math.ceil(math.sqrt(count))
    scale = min(1.0, max_size / (grid * max(height, width)))
    tile_h, tile_w = math.ceil(height * scale), math.ceil(width * scale)
    return math.ceil(count / grid) * tile_h, grid * tile_w, tile_h, tile_w


def plot_batch(
    images: torch.Tensor | np.ndarray,
    targets: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
    paths: Sequence[str | Path] | None,
    names: dict[int, str] | Sequence[str],
    out_path: str | Path,
    max_size: int = 1920,
    max_subplots: int = 16,
    conf_thres: float = 0.25,
) -> Path:
    """A grid of up to 16 batch images with boxes (train_batch*.jpg, val_batch*_labels.jpg, val_batch*_pred.jpg).

    Args:
        images: (B, 3, H, W) RGB, uint8 (or float in [0, 1]).
        targets: ground truth (M, 6) image index, class, x_center, y_center, w, h normalised to the image, or
            predictions as a list with one (n, 6) x1 y1 x2 y2 conf cls tensor per image in pixels of `images`
            (drawn with their scores when above `conf_thres`).
        paths: file names written on each tile (optional).
    """
    images = _to_numpy(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"plot_batch: images must be (B, 3, H, W), got {images.shape}")
    if images.dtype != np.uint8:
        images = images.astype(np.float32) * (255 if images.max(initial=0) <= 1 else 1)
        images = images.clip(0, 255).astype(np.uint8)
    batch, _, height, width = images.shape
    count = min(batch, max_subplots)
    mosaic_h, mosaic_w, tile_h, tile_w = mosaic_shape(batch, height, width, max_size, max_subplots)
    grid = mosaic_w // tile_w
    mosaic = np.full((mosaic_h, mosaic_w, 3), 255, dtype=np.uint8)
    name_dict = dict(enumerate(_names_list(names)))
    per_image = _boxes_per_image(targets, count, width, height, conf_thres)
    thickness = max(1, round(min(tile_h, tile_w) / 200))
    for i in range(count):
        top, left = (i // grid) * tile_h, (i % grid) * tile_w
        tile = cv2.cvtColor(np.ascontiguousarray(images[i].transpose(1, 2, 0)), cv2.COLOR_RGB2BGR)
        if (tile_h, tile_w) != (height, width):
            tile = cv2.resize(tile, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        boxes, classes, scores = per_image[i]
        boxes = boxes * (tile_w / width, tile_h / height, tile_w / width, tile_h / height)
        draw_detections(tile, boxes, classes, scores, name_dict, line_thickness=thickness)
        if paths is not None and i < len(paths):
            cv2.putText(
                tile,
                Path(paths[i]).name[:40],
                (5, 15 + 3 * thickness),
                0,
                thickness / 3 + 0.2,
                (220, 220, 220),
                thickness,
                cv2.LINE_AA,
            )
        cv2.rectangle(tile, (0, 0), (tile_w - 1, tile_h - 1), (255, 255, 255), 2)  # tile border
        mosaic[top : top + tile_h, left : left + tile_w] = tile
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), mosaic):
        raise OSError(f"plot_batch: could not write {out_path}")
    return out_path


def _boxes_per_image(
    targets: torch.Tensor | np.ndarray | Sequence, count: int, width: int, height: int, conf_thres: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(xyxy pixel boxes, classes, scores or None) for each of the first `count` images."""
    if isinstance(targets, (list, tuple)):  # predictions, one tensor per image
        out = []
        for i in range(count):
            det = _to_numpy(targets[i]).reshape(-1, 6) if i < len(targets) else np.zeros((0, 6))
            det = det[det[:, 4] > conf_thres]
            out.append((det[:, :4], det[:, 5].astype(int), det[:, 4]))
        return out
    targets = _to_numpy(targets).reshape(-1, 6) if np.size(targets) else np.zeros((0, 6))
    out = []
    for i in range(count):
        rows = targets[targets[:, 0] == i]
        boxes = xywh_to_xyxy(rows[:, 2:6]) * (width, height, width, height)
        out.append((boxes, rows[:, 1].astype(int), None))
    return out


def plot_labels(
    labels: torch.Tensor | np.ndarray,
    names: dict[int, str] | Sequence[str],
    out_path: str | Path,
    dpi: int = DPI,
) -> Path:
    """labels.jpg: instances per class, box shapes, box centres and box sizes of (N, 5) cls x y w h labels."""
    labels = _to_numpy(labels).reshape(-1, 5).astype(np.float64) if np.size(labels) else np.zeros((0, 5))
    names = _names_list(names)
    classes = labels[:, 0].astype(int)
    figure, axes = _figure(8, 8, 2, 2)
    counts = np.bincount(classes, minlength=len(names))[: len(names)] if len(classes) else np.zeros(len(names), int)
    ax = axes[0, 0]
    ax.bar(range(len(names)), counts, color=[_rgb(i) for i in range(len(names))])
    ax.set(ylabel="instances", title=f"{len(labels)} labels")
    if len(names) < 30:
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    # Box shapes: up to 1000 outlines drawn centred on one canvas.
    canvas = np.full((500, 500, 3), 255, dtype=np.uint8)
    for cls, _, _, w, h in labels[:1000]:
        half = np.array([w, h]) * 250
        cv2.rectangle(
            canvas, tuple((250 - half).astype(int)), tuple((250 + half).astype(int)), class_color(int(cls))[::-1], 1
        )  # canvas is RGB for matplotlib
    axes[0, 1].imshow(canvas)
    axes[0, 1].axis("off")
    axes[0, 1].set_title("box shapes")
    for ax, (a, b), (xlabel, ylabel) in (
        (axes[1, 0], (1, 2), ("x", "y")),
        (axes[1, 1], (3, 4), ("width", "height")),
    ):
        ax.hist2d(labels[:, a], labels[:, b], bins=50, range=[[0, 1], [0, 1]], cmap="Blues", cmin=1, vmin=0)
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1))
    axes[1, 0].invert_yaxis()  # image coordinates: y grows downwards
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.08, top=0.95, wspace=0.25, hspace=0.3)
    return _save(figure, out_path, dpi)


def _gaussian_smooth(values: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian-smoothed copy, edges reflected, NaNs left as they are."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="reflect")
    return np.convolve(padded, kernel, mode="valid")


def plot_results(results_csv_path: str | Path, out_path: str | Path | None = None, dpi: int = DPI) -> Path:
    """results.png next to the training CSV: one subplot per column (losses, P, R, mAPs, lr) against epoch."""
    path = Path(results_csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"plot_results: no results file {path}")
    with path.open(newline="") as file:
        reader = csv.reader(file)
        rows = [[cell.strip() for cell in row] for row in reader if row]
    if len(rows) < 2:
        raise ValueError(f"plot_results: {path} has no data rows")
    header, data = rows[0], rows[1:]

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return float("nan")

    table = np.array([[number(cell) for cell in row] + [math.nan] * (len(header) - len(row)) for row in data])
    columns = list(range(len(header)))
    x = np.arange(len(data), dtype=float)
    if header[0].lower() == "epoch":
        x, columns = table[:, 0], columns[1:]
    cols = min(5, max(len(columns), 1))
    rows_n = max(1, math.ceil(len(columns) / cols))
    figure, axes = _figure(2.6 * cols, 2.6 * rows_n, rows_n, cols)
    for ax in axes.flat[len(columns) :]:
        ax.axis("off")
    for ax, column in zip(axes.flat, columns):
        values = table[:, column]
        ax.plot(x, values, marker=".", linewidth=2, markersize=6, label="results")
        if len(values) > 3 and np.isfinite(values).all():
            ax.plot(x, _gaussian_smooth(values), ":", linewidth=2, label="smooth")
        ax.set_title(header[column], fontsize=10)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7)
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.06, top=0.93, wspace=0.3, hspace=0.4)
    return _save(figure, out_path or path.with_name("results.png"), dpi)
