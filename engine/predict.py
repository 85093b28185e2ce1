"""Prediction on BGR images with any backend: letterbox, BGR->RGB, /255, run, NMS, boxes back to the originals.

The same steps for every weights format, so `.pt`, `.torchscript` and `.onnx` give the same detections.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.backends import Backend
from engine.imgsz import check_imgsz
from engine.predict_options import PREDICT_DEFAULTS as D
from utils.boxes import xyxy_to_xywh
from utils.letterbox import letterbox, scale_boxes_to_original
from utils.logging import LOGGER
from utils.nms import non_max_suppression


@dataclass
class Detections:
    """Detections of one image, in its original pixel coordinates."""

    path: str
    shape: tuple[int, int]  # original (h, w)
    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (n,) float32
    classes: np.ndarray  # (n,) int64
    names: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    def summary(self) -> str:
        """'2 person, 1 bus' (by class index), or '(no detections)'."""
        if not len(self):
            return "(no detections)"
        counts = Counter(int(c) for c in self.classes)
        return ", ".join(f"{n} {self.names.get(c, str(c))}" for c, n in sorted(counts.items()))

    def label_lines(self, with_confidence: bool = False) -> list[str]:
        """YOLO label lines 'class xc yc w h [conf]', normalised to the original image."""
        h, w = self.shape
        xywh = xyxy_to_xywh(self.boxes) / np.array([w, h, w, h], dtype=self.boxes.dtype)
        lines = []
        for box, score, cls in zip(xywh, self.scores, self.classes):
            values = [f"{int(cls)}", *(f"{v:.6f}" for v in box)]
            lines.append(" ".join(values + ([f"{score:.6f}"] if with_confidence else [])))
        return lines


@dataclass
class Timings:
    """Milliseconds spent per stage on one batch."""

    preprocess: float = 0.0
    inference: float = 0.0
    nms: float = 0.0

    def describe(self) -> str:
        return f"pre {self.preprocess:.1f}ms, inference {self.inference:.1f}ms, NMS {self.nms:.1f}ms"


def preprocess(
    images: Sequence[np.ndarray], imgsz: tuple[int, int], stride: int, rect: bool
) -> tuple[torch.Tensor, list[tuple[float, tuple[float, float]]]]:
    """Letterbox BGR images to `imgsz` (`rect`: pad only to a multiple of `stride`), to RGB, CHW, float in [0, 1].

    Returns the batch and per image its (ratio, (pad_left, pad_top)) for mapping boxes back.
    """
    rect = rect and len({im.shape[:2] for im in images}) == 1  # one batch needs one shape
    boxed, transforms = [], []
    for image in images:
        resized, ratio, padding = letterbox(image, imgsz, auto=rect, stride=stride)
        boxed.append(resized[..., ::-1].transpose(2, 0, 1))  # BGR HWC -> RGB CHW
        transforms.append((ratio, padding))
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(boxed))).float() / 255.0
    return batch, transforms


def postprocess(
    prediction: torch.Tensor,
    transforms: Sequence[tuple[float, tuple[float, float]]],
    shapes: Sequence[tuple[int, int]],
    paths: Sequence[str],
    names: dict[int, str],
    has_objectness: bool,
    conf_thres: float = D.conf_thres,
    iou_thres: float = D.iou_thres,
    classes: list[int] | None = None,
    agnostic: bool = D.agnostic_nms,
    max_det: int = D.max_det,
) -> list[Detections]:
    """NMS, then boxes from letterboxed input pixels back to each original image."""
    kept = non_max_suppression(
        prediction,
        conf_thres,
        iou_thres,
        classes=classes,
        agnostic=agnostic,
        max_det=max_det,
        has_objectness=has_objectness,
    )
    results = []
    for det, (ratio, padding), shape, path in zip(kept, transforms, shapes, paths):
        det = det.detach().float().cpu()
        boxes = scale_boxes_to_original(det[:, :4].clone(), ratio, padding, shape)
        results.append(
            Detections(path, tuple(shape), boxes.numpy(), det[:, 4].numpy(), det[:, 5].long().numpy(), names)
        )
    return results


class Predictor:
    """Backend plus the settings of one prediction run; `predict(images)` returns per-image Detections."""

    def __init__(
        self,
        backend: Backend,
        imgsz: int | Sequence[int] | None = None,
        conf_thres: float = D.conf_thres,
        iou_thres: float = D.iou_thres,
        classes: list[int] | None = None,
        agnostic_nms: bool = D.agnostic_nms,
        max_det: int = D.max_det,
        rect: bool | None = None,
    ) -> None:
        self.backend = backend
        imgsz = backend.default_imgsz if imgsz is None else imgsz
        if not backend.dynamic and backend.imgsz is not None:
            fixed = tuple(backend.imgsz)
            requested = check_imgsz(imgsz, backend.stride)
            if requested != fixed:
                LOGGER.warning(f"{backend.path} has a fixed input size {fixed[0]}x{fixed[1]}; using it")
            self.imgsz = fixed
        else:
            self.imgsz = check_imgsz(imgsz, backend.stride)
        # Shape-dynamic models get the minimum rectangle (faster); fixed-size ones need the full square.
        self.rect = backend.dynamic if rect is None else (rect and backend.dynamic)
        self.conf_thres, self.iou_thres = conf_thres, iou_thres
        self.classes, self.agnostic_nms, self.max_det = classes, agnostic_nms, max_det
        self.last_input_shape: tuple[int, ...] = self.imgsz

    def predict(
        self, images: Sequence[np.ndarray], paths: Sequence[str] | None = None
    ) -> tuple[list[Detections], Timings]:
        """Detections for a batch of BGR images (HWC uint8)."""
        paths = list(paths) if paths is not None else [f"image{i}" for i in range(len(images))]
        timings = Timings()
        start = time.perf_counter()
        batch, transforms = preprocess(images, self.imgsz, self.backend.stride, self.rect)
        self.last_input_shape = tuple(batch.shape[2:])  # (h, w) the network saw, for log lines
        timings.preprocess = (time.perf_counter() - start) * 1000

        start = time.perf_counter()
        prediction = self.backend(batch)
        if prediction.device.type == "cuda":
            torch.cuda.synchronize(prediction.device)
        timings.inference = (time.perf_counter() - start) * 1000

        start = time.perf_counter()
        results = postprocess(
            prediction,
            transforms,
            [im.shape[:2] for im in images],
            paths,
            self.backend.names,
            self.backend.has_objectness,
            self.conf_thres,
            self.iou_thres,
            self.classes,
            self.agnostic_nms,
            self.max_det,
        )
        timings.nms = (time.perf_counter() - start) * 1000
        return results, timings
