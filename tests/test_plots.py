"""Every plot writes a non-empty image of the expected size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.coco_cases import realistic_case
from utils.metrics import DetectionMetrics
from utils.plots import (
    mosaic_shape,
    plot_batch,
    plot_confusion_matrix,
    plot_labels,
    plot_metric_curve,
    plot_pr_curve,
    plot_results,
)

DPI = 40  # small images keep the tests fast; sizes are inches x dpi


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, which must exist and decode."""
    assert path.is_file() and path.stat().st_size > 0
    image = cv2.imread(str(path))
    assert image is not None, path
    return image.shape[1], image.shape[0]


def test_curves_and_confusion_matrix(tmp_path: Path):
    x = np.linspace(0, 1, 1000)
    curves = np.stack([1 - x**2, 1 - x])
    assert image_size(plot_pr_curve(x, curves, np.array([0.6, 0.5]), ["a", "b"], tmp_path / "PR.png", dpi=DPI)) == (
        360,
        240,
    )
    assert image_size(plot_metric_curve(x, curves, ["a", "b"], tmp_path / "F1.png", ylabel="F1", dpi=DPI)) == (360, 240)
    many = np.tile(curves, (15, 1))  # 30 classes: grey lines, no legend per class
    assert image_size(plot_metric_curve(x, many, [str(i) for i in range(30)], tmp_path / "P.png", dpi=DPI)) == (
        360,
        240,
    )
    matrix = np.array([[5, 1, 2], [0, 7, 1], [1, 0, 0]])
    assert image_size(plot_confusion_matrix(matrix, ["a", "b"], tmp_path / "cm.png", normalize=False, dpi=DPI)) == (
        480,
        360,
    )
    with pytest.raises(ValueError, match="2 class names"):
        plot_confusion_matrix(np.zeros((4, 4)), ["a", "b"], tmp_path / "bad.png")


def test_detection_metrics_plot_writes_all(tmp_path: Path):
    case = realistic_case(seed=0, n_images=8)
    metrics = DetectionMetrics(case.names)
    for index, predictions in enumerate(case.predictions):
        metrics.update(predictions, case.pixel_labels(index))
    paths = metrics.plot(tmp_path / "val", dpi=DPI)
    assert sorted(p.name for p in paths) == sorted(
        [
            "PR_curve.png",
            "F1_curve.png",
            "P_curve.png",
            "R_curve.png",
            "confusion_matrix.png",
            "confusion_matrix_normalized.png",
        ]
    )
    assert image_size(tmp_path / "val" / "PR_curve.png") == (9 * DPI, 6 * DPI)
    assert image_size(tmp_path / "val" / "confusion_matrix_normalized.png") == (12 * DPI, 9 * DPI)


def test_plot_batch_labels_and_predictions(tmp_path: Path):
    images = torch.randint(0, 255, (5, 3, 64, 96), dtype=torch.uint8)
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.4, 0.3], [0, 1, 0.2, 0.2, 0.1, 0.1], [3, 1, 0.9, 0.9, 0.2, 0.2]])
    paths = [f"dir/img{i}.jpg" for i in range(5)]
    labels_path = plot_batch(images, targets, paths, ["cat", "dog"], tmp_path / "val_batch0_labels.jpg")
    assert image_size(labels_path) == (3 * 96, 2 * 64)  # 5 images -> 3 columns, 2 rows, no downscaling
    predictions = [torch.tensor([[10, 10, 40, 30, 0.9, 1], [0, 0, 5, 5, 0.1, 0]])] + [torch.zeros((0, 6))] * 4
    pred_path = plot_batch(
        images.float() / 255, predictions, paths, {0: "cat", 1: "dog"}, tmp_path / "val_batch0_pred.jpg"
    )
    assert image_size(pred_path) == (3 * 96, 2 * 64)
    # Boxes are drawn: the labelled mosaic differs from one without targets.
    plain = plot_batch(images, torch.zeros((0, 6)), None, ["cat", "dog"], tmp_path / "plain.jpg")
    assert not np.array_equal(cv2.imread(str(plain)), cv2.imread(str(labels_path)))
    # Large batches are capped at 16 tiles and scaled to max_size.
    big = torch.zeros((20, 3, 640, 640), dtype=torch.uint8)
    height, width, tile_h, tile_w = mosaic_shape(20, 640, 640, max_size=800)
    assert (height, width, tile_h, tile_w) == (800, 800, 200, 200)
    assert image_size(
        plot_batch(big, torch.zeros((0, 6)), None, ["a"], tmp_path / "train_batch0.jpg", max_size=800)
    ) == (800, 800)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        plot_batch(torch.zeros((3, 64, 64)), torch.zeros((0, 6)), None, ["a"], tmp_path / "bad.jpg")


def test_plot_labels(tmp_path: Path):
    rng = np.random.default_rng(0)
    labels = np.concatenate((rng.integers(0, 3, (200, 1)), rng.uniform(0.05, 0.95, (200, 4)) * [1, 1, 0.3, 0.3]), 1)
    assert image_size(plot_labels(labels, ["a", "b", "c"], tmp_path / "labels.jpg", dpi=DPI)) == (320, 320)
    assert image_size(plot_labels(np.zeros((0, 5)), {0: "a"}, tmp_path / "empty.jpg", dpi=DPI)) == (320, 320)


def test_plot_results(tmp_path: Path):
    header = [
        "epoch",
        "train/box_loss",
        "train/cls_loss",
        "train/dfl_loss",
        "metrics/precision",
        "metrics/recall",
        "metrics/mAP50",
        "metrics/mAP50-95",
        "val/box_loss",
        "val/cls_loss",
        "val/dfl_loss",
        "lr/pg0",
    ]
    rows = [[str(e)] + [f"{1 / (e + 1 + k):.5f}" for k in range(len(header) - 1)] for e in range(12)]
    csv_path = tmp_path / "results.csv"
    csv_path.write_text("\n".join(",".join(f"{c:>12}" for c in row) for row in [header, *rows]) + "\n")
    out = plot_results(csv_path, dpi=DPI)
    assert out == tmp_path / "results.png"
    # 11 columns besides epoch: 3 rows of 5 subplots, 2.6 in each.
    assert image_size(out) == (round(5 * 2.6 * DPI), round(3 * 2.6 * DPI))
    short = tmp_path / "short.csv"
    short.write_text("epoch,loss\n0,1.0\n1,\n")  # an empty cell is a gap, not an error
    assert image_size(plot_results(short, tmp_path / "short.png", dpi=DPI)) == (round(2.6 * DPI), round(2.6 * DPI))
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        plot_results(tmp_path / "missing.csv")
    (tmp_path / "header_only.csv").write_text("epoch,loss\n")
    with pytest.raises(ValueError, match="no data rows"):
        plot_results(tmp_path / "header_only.csv")
