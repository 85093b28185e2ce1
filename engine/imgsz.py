"""Input sizes: one number or (h, w), rounded up to a multiple of the model's largest stride."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from utils.errors import OptionError
from utils.logging import LOGGER


def image_size_problem(imgsz: int | Sequence[int]) -> str | None:
    """What is wrong with an --imgsz value (one size or `h w`, each >= 1), or None; for options' `check`."""
    sizes = [imgsz] if isinstance(imgsz, (int, np.integer)) else list(imgsz)
    if len(sizes) not in (1, 2):
        return "takes one size or 'h w'"
    if min(sizes) < 1:
        return "sizes must be >= 1 pixel"
    return None


def check_imgsz(imgsz: int | Sequence[int], stride: int) -> tuple[int, int]:
    """(h, w) from `640` or `[640]` or `[480, 640]`, each rounded up to a multiple of `stride` (with a warning)."""
    sizes = [int(imgsz)] if isinstance(imgsz, (int, np.integer)) else [int(s) for s in imgsz]
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise OptionError(f"--imgsz takes one size or 'h w', got {imgsz}")
    rounded = [-(-s // stride) * stride for s in sizes]
    if rounded != sizes:
        LOGGER.warning(f"--imgsz {sizes} must be a multiple of the max stride {stride}; using {rounded}")
    return rounded[0], rounded[1]
