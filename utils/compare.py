"""Comparing model outputs: fused vs unfused, exported vs PyTorch, ours vs a reference implementation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _flatten(outputs: Any) -> list[np.ndarray]:
    if isinstance(outputs, (list, tuple)):
        return [a for o in outputs for a in _flatten(o)]
    if isinstance(outputs, torch.Tensor):
        return [outputs.detach().float().cpu().numpy()]
    return [np.asarray(outputs, dtype=np.float32)]


def relative_max_difference(reference: Any, other: Any) -> float:
    """max |other - reference| / max |reference| over all tensors (nested lists allowed, shapes must match)."""
    refs, others = _flatten(reference), _flatten(other)
    if len(refs) != len(others):
        raise ValueError(f"{len(refs)} reference outputs vs {len(others)} outputs")
    worst_diff, scale = 0.0, 0.0
    for r, o in zip(refs, others):
        if r.shape != o.shape:
            raise ValueError(f"shape mismatch: reference {r.shape} vs {o.shape}")
        if r.size:
            worst_diff = max(worst_diff, float(np.abs(o.astype(np.float64) - r).max()))
            scale = max(scale, float(np.abs(r).max()))
    return worst_diff / scale if scale > 0 else worst_diff
