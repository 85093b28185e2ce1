"""Helpers for the inference and export tests: random-weight checkpoints that detect something, test images."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.export import export
from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from utils.checkpoint import save_checkpoint

# Checkpoints and exports shared by the test files of one pytest process (building and exporting dominate
# their run time); removed when the process ends.
_SHARED_DIR = Path(tempfile.mkdtemp(prefix="yolo-engine-tests-"))
atexit.register(shutil.rmtree, _SHARED_DIR, ignore_errors=True)


@torch.no_grad()
def make_checkpoint(path: Path, cfg: str = "yolov5n.yaml", nc: int = 3, seed: int = 0) -> Path:
    """Save a random-weight model whose head biases are raised so that it outputs confident boxes.

    Freshly initialised heads start near zero confidence (the training prior), which would leave NMS with
    nothing to keep and the agreement tests with nothing to compare. BatchNorm statistics are randomised so
    that fusing at export does real work.
    """
    torch.manual_seed(seed)
    model = randomize_batchnorm(DetectionModel(cfg, nc=nc), seed=seed)
    head = model.head
    if head.has_objectness:
        for conv in head.m:
            conv.bias.view(head.na, -1)[:, 4:] += 4.0
    else:
        for branch in head.cls_convs:
            branch[-1].bias += 8.0
    model.names = {i: f"thing{i}" for i in range(nc)}
    return save_checkpoint(path, model)


def write_image(path: Path, height: int = 72, width: int = 96, seed: int = 0) -> Path:
    """A BGR image with a few filled rectangles on noise, so features vary across it."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for _ in range(3):
        x1, y1 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        cv2.rectangle(
            image, (x1, y1), (x1 + width // 3, y1 + height // 3), tuple(int(c) for c in rng.integers(0, 255, 3)), -1
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
    return path


def write_video(path: Path, frames: int = 6, height: int = 64, width: int = 80) -> Path:
    """A short mp4 of moving rectangles."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for i in range(frames):
        image = np.full((height, width, 3), 40, np.uint8)
        cv2.rectangle(image, (5 + 4 * i, 10), (35 + 4 * i, 50), (0, 200, 255), -1)
        writer.write(image)
    writer.release()
    return path


def match_detections(reference, other, box_tolerance: float = 0.05, score_tolerance: float = 1e-3) -> float:
    """Fraction of `reference` detections that `other` has too (same class, boxes within tolerance in px,
    scores within tolerance), each matched once; 1.0 when both are empty."""
    if len(reference) == 0:
        return 1.0 if len(other) == 0 else 0.0
    used = np.zeros(len(other), bool)
    matched = 0
    for box, score, cls in zip(reference.boxes, reference.scores, reference.classes):
        close = (
            (other.classes == cls)
            & (np.abs(other.boxes - box).max(1) <= box_tolerance)
            & (np.abs(other.scores - score) <= score_tolerance)
            & ~used
        )
        if close.any():
            used[np.flatnonzero(close)[0]] = True
            matched += 1
    return matched / max(len(reference), len(other))


@functools.cache
def shared_checkpoint(cfg: str = "yolov5n.yaml") -> Path:
    """A make_checkpoint (3 classes) made once per test session; treat as read-only."""
    return make_checkpoint(_SHARED_DIR / Path(cfg).stem / "best.pt", cfg)


@functools.cache
def shared_exports(cfg: str = "yolov5n.yaml") -> dict:
    """shared_checkpoint(cfg) exported once to dynamic TorchScript and ONNX at 64 px.

    Returns {"pt": path, "results": [ExportResult, ...], "torchscript": path, "onnx": path}.
    """
    weights = shared_checkpoint(cfg)
    results = export(weights, ["torchscript", "onnx"], imgsz=64, dynamic=True, latency_runs=1)
    return {"pt": weights, "results": results, **{r.format: r.path for r in results if r.ok}}
