"""Helpers for comparing our backbones with timm's (the numerical reference; a test dependency only)."""

from __future__ import annotations

import torch
import torch.nn as nn

from models.reparam import randomize_batchnorm
from utils.compare import relative_max_difference

TOLERANCE = 1e-4  # max |ours - timm| <= 1e-4 x max |timm| on every output level


@torch.no_grad()
def perturb(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and layer scales, so a comparison exercises every tensor.

    Fresh BatchNorms are identities in eval mode and InceptionNeXt's layer scales start at 1e-6 (its blocks
    would be near-identities); either could hide a wrongly mapped tensor.
    """
    randomize_batchnorm(model, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    for name, parameter in model.named_parameters():
        if name.endswith("gamma"):
            parameter.copy_(torch.rand(parameter.shape, generator=generator) * 0.5 + 0.1)
    return model


def level_differences(reference: list[torch.Tensor], ours: list[torch.Tensor]) -> list[float]:
    """Relative max difference per output level; shapes must agree."""
    assert len(reference) == len(ours), f"{len(reference)} reference levels vs {len(ours)}"
    for r, o in zip(reference, ours):
        assert r.shape == o.shape, f"shape {tuple(o.shape)} vs reference {tuple(r.shape)}"
    return [relative_max_difference(r, o) for r, o in zip(reference, ours)]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
