"""Drawing boxes and labels on images (detect.py outputs and the batch plots of training and validation)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# A fixed palette so a class keeps its colour across images and runs (BGR).
_PALETTE_HEX = [
    "FF3838",
    "FF9D97",
    "FF701F",
    "FFB21D",
    "CFD231",
    "48F90A",
    "92CC17",
    "3DDB86",
    "1A9334",
    "00D4BB",
    "2C99A8",
    "00C2FF",
    "344593",
    "6473FF",
    "0018EC",
    "8438FF",
    "520085",
    "CB38FF",
    "FF95C8",
    "FF37C7",
]
PALETTE = [tuple(int(h[i : i + 2], 16) for i in (4, 2, 0)) for h in _PALETTE_HEX]


def class_color(class_id: int) -> tuple[int, int, int]:
    """BGR colour of a class."""
    return PALETTE[int(class_id) % len(PALETTE)]


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: Sequence[int],
    scores: Sequence[float] | None = None,
    names: dict[int, str] | None = None,
    line_thickness: int | None = None,
    hide_labels: bool = False,
    hide_conf: bool = False,
) -> np.ndarray:
    """Draw xyxy `boxes` (pixels) with class names and scores on a BGR image, in place; returns the image."""
    thickness = line_thickness or max(round(sum(image.shape[:2]) / 2 * 0.003), 2)
    font_scale = max(thickness / 3, 0.4)
    for i, (box, cls) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), classes)):
        color = class_color(int(cls))
        p1, p2 = (int(box[0]), int(box[1])), (int(box[2]), int(box[3]))
        cv2.rectangle(image, p1, p2, color, thickness, lineType=cv2.LINE_AA)
        if hide_labels:
            continue
        label = names.get(int(cls), str(int(cls))) if names else str(int(cls))
        if scores is not None and not hide_conf:
            label = f"{label} {float(scores[i]):.2f}"
        text_thickness = max(thickness - 1, 1)
        (w, h), _ = cv2.getTextSize(label, 0, font_scale, text_thickness)
        outside = p1[1] - h - 3 >= 0  # label above the box when it fits
        corner = (p1[0] + w, p1[1] - h - 3 if outside else p1[1] + h + 3)
        cv2.rectangle(image, p1, corner, color, -1, cv2.LINE_AA)
        text_origin = (p1[0], p1[1] - 2 if outside else p1[1] + h + 2)
        cv2.putText(image, label, text_origin, 0, font_scale, (255, 255, 255), text_thickness, cv2.LINE_AA)
    return image
