"""Multi-scale training: rescale a whole batch to a random size that is a multiple of the stride."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def random_rescale_batch(
    images: torch.Tensor,
    imgsz: int,
    stride: int,
    seed: int | Sequence[int] | np.random.Generator,
    low: float = 0.5,
    high: float = 1.5,
) -> torch.Tensor:
    """Resize a (B, C, H, W) batch so its long side is a random multiple of `stride` in [low, high] * imgsz.

    Targets are normalised, so they need no change. `seed` (e.g. (seed, epoch, iteration)) makes the size a
    function of the call, not of global state. uint8 input stays uint8; float input stays float.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    smallest = max(stride, math.ceil(imgsz * low / stride) * stride)
    largest = max(smallest, int(imgsz * high) // stride * stride)
    size = int(rng.integers(smallest // stride, largest // stride + 1)) * stride
    factor = size / max(images.shape[2:])
    if factor == 1:
        return images
    new_shape = [max(stride, math.ceil(d * factor / stride) * stride) for d in images.shape[2:]]
    resized = F.interpolate(images.float(), size=new_shape, mode="bilinear", align_corners=False)
    if images.dtype == torch.uint8:
        return resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized.to(images.dtype)
