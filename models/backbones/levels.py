"""Choosing a foreign model's pyramid outputs: one map per power-of-two stride, the deepest one at each."""

from __future__ import annotations

import math
from collections.abc import Sequence

from utils.errors import UserError


class OptionalDependencyError(UserError, ImportError):
    """A backbone needs a package that is not installed (timm); the message says which and how to get it."""


def pyramid_level(stride: float) -> int | None:
    """log2 of a stride that is a power of two >= 2 (P1, P2, ...), else None."""
    if stride < 2:
        return None
    level = math.log2(stride)
    return round(level) if abs(level - round(level)) < 1e-6 else None


def deepest_per_level(strides: Sequence[float]) -> list[int]:
    """Indices (in execution order) of the last output at each power-of-two stride >= 2, fine to coarse.

    Outputs at other strides (1, or 14 for a patch-14 ViT) cannot fill a pyramid slot and are left out.
    """
    chosen: dict[int, int] = {}
    for index, stride in enumerate(strides):
        level = pyramid_level(stride)
        if level is not None:
            chosen[level] = index  # later outputs at the same stride are deeper
    indices = [chosen[level] for level in sorted(chosen)]
    if indices != sorted(indices):
        raise ValueError(f"outputs with strides {list(strides)} do not get coarser in execution order")
    return indices
