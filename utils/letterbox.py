"""Letterboxing: resize keeping the aspect ratio, pad to a target shape; and mapping boxes back."""

from __future__ import annotations

import cv2
import numpy as np
import torch

PAD_COLOR = (114, 114, 114)


def letterbox(
    image: np.ndarray,
    new_shape: int | tuple[int, int] = 640,
    color: tuple[int, int, int] = PAD_COLOR,
    auto: bool = False,
    scale_up: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize `image` (HWC) to fit `new_shape` (h, w) and pad it.

    `auto` pads only to the next multiple of `stride` (minimum rectangle). Returns the image, the resize
    ratio, and the (left, top) padding in pixels.
    """
    shape = image.shape[:2]
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    ratio = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    if not scale_up:
        ratio = min(ratio, 1.0)
    unpadded = (int(round(shape[1] * ratio)), int(round(shape[0] * ratio)))  # (w, h)
    pad_w, pad_h = new_shape[1] - unpadded[0], new_shape[0] - unpadded[1]
    if auto:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    pad_w, pad_h = pad_w / 2, pad_h / 2
    if shape[::-1] != unpadded:
        image = cv2.resize(image, unpadded, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(pad_h - 0.1)), int(round(pad_h + 0.1))
    left, right = int(round(pad_w - 0.1)), int(round(pad_w + 0.1))
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return image, ratio, (float(left), float(top))


def scale_boxes_to_original(
    boxes: torch.Tensor | np.ndarray,
    ratio: float,
    padding: tuple[float, float],
    original_shape: tuple[int, int],
) -> torch.Tensor | np.ndarray:
    """Map xyxy boxes from letterboxed pixels back to the original image (h, w), clipped to it."""
    boxes[..., [0, 2]] -= padding[0]
    boxes[..., [1, 3]] -= padding[1]
    boxes[..., :4] /= ratio
    return clip_boxes(boxes, original_shape)


def clip_boxes(boxes: torch.Tensor | np.ndarray, shape: tuple[int, int]) -> torch.Tensor | np.ndarray:
    """Clip xyxy boxes in place to an image of shape (h, w)."""
    if isinstance(boxes, torch.Tensor):
        boxes[..., 0].clamp_(0, shape[1])
        boxes[..., 1].clamp_(0, shape[0])
        boxes[..., 2].clamp_(0, shape[1])
        boxes[..., 3].clamp_(0, shape[0])
    else:
        boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, shape[1])
        boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, shape[0])
    return boxes
