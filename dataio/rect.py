"""Rectangular batches for validation: images sorted by aspect ratio, each batch letterboxed to the smallest
stride-multiple shape that fits its images (less padding than square, so faster and closer to deployment)."""

from __future__ import annotations

import numpy as np


def aspect_order(shapes: np.ndarray) -> np.ndarray:
    """Indices sorting images by height/width, from widest to tallest (shapes are (N, 2) (w, h))."""
    return np.argsort(shapes[:, 1] / shapes[:, 0], kind="stable")


def rect_batch_shapes(
    shapes: np.ndarray, batch_size: int, imgsz: int, stride: int, pad: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per image its batch number, and per batch the (h, w) input shape, for images already in aspect order.

    A batch of wide images gets height imgsz * (its largest h/w), a batch of tall ones width imgsz / (its
    smallest h/w), a mixed batch a square; sides are rounded up to a multiple of `stride` after adding `pad`
    strides (the references use pad=0.5 for validation).
    """
    n = len(shapes)
    batch_index = np.arange(n) // batch_size
    aspect = shapes[:, 1] / shapes[:, 0]
    relative = np.ones((batch_index[-1] + 1 if n else 0, 2))
    for b in range(len(relative)):
        ratios = aspect[batch_index == b]
        if ratios.max() < 1:  # all wide: full width, reduced height
            relative[b] = (ratios.max(), 1.0)
        elif ratios.min() > 1:  # all tall: full height, reduced width
            relative[b] = (1.0, 1.0 / ratios.min())
    batch_shapes = (np.ceil(relative * imgsz / stride + pad).astype(int) * stride).astype(np.int64)
    return batch_index, batch_shapes
