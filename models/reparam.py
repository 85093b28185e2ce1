"""One re-parameterization protocol for every foldable block (Conv+BN, CSP's shared BN, MobileOne branches).

A block that can be folded implements `reparameterize()`: it folds its training-time structure into an
equivalent inference structure in place, and calling it again does nothing. `reparameterize_model` walks a
model once, parents before children, so a block that consumes its children's BatchNorms sees them intact.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn


@runtime_checkable
class Reparameterizable(Protocol):
    """A block with a training-time structure that folds into a cheaper, output-equivalent one."""

    def reparameterize(self) -> None:
        """Fold in place; idempotent."""


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Fold every Reparameterizable block of `model` in place (idempotent) and return the model."""
    for module in list(model.modules()):  # snapshot: blocks replace their own children while we walk
        if isinstance(module, Reparameterizable):
            module.reparameterize()
    return model


def batchnorm_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (scale, shift) that an eval-mode BatchNorm applies: y = x * scale + shift."""
    std = (bn.running_var + bn.eps).sqrt()
    weight = bn.weight if bn.affine else torch.ones_like(std)
    bias = bn.bias if bn.affine else torch.zeros_like(std)
    scale = weight / std
    return scale, bias - bn.running_mean * scale


@torch.no_grad()
def fold_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor | None = None) -> nn.Conv2d:
    """Return a new Conv2d (with bias) equal to `conv(x) * scale + shift` per output channel (no shift if None)."""
    shift = torch.zeros_like(scale) if shift is None else shift
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    fused.bias.copy_(conv_bias * scale + shift)
    fused.requires_grad_(conv.weight.requires_grad)
    return fused


def fold_batchnorm(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Conv2d:
    """Return a new Conv2d (with bias) equal to `bn(conv(x))` in eval mode."""
    return fold_affine(conv, *batchnorm_scale_shift(bn))


def has_batchnorm(model: nn.Module) -> bool:
    """True if any BatchNorm layer is left in `model`."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters.

    Freshly built BatchNorms are identities in eval mode, so a fuse check on them would prove little.
    """
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            if m.affine:
                m.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model


@torch.no_grad()
def fold_input_affine(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """Return a new Conv2d (with bias) equal to `conv(x * scale + shift)`, scale and shift per input channel.

    Exact only when the conv reads no zero padding (a padded border would see `shift`, not zero), so a padded
    conv is refused; grouped convs are refused too (none of our patterns needs them).
    """
    unpadded = conv.padding == "valid" if isinstance(conv.padding, str) else all(p == 0 for p in conv.padding)
    if not unpadded or conv.groups != 1 or conv.padding_mode != "zeros":
        raise ValueError(
            "a per-channel input affine (e.g. a preceding BatchNorm) folds into a conv only if that conv has "
            "no padding and no groups"
        )
    ones = torch.ones(conv.out_channels, device=conv.weight.device, dtype=conv.weight.dtype)
    fused = fold_affine(conv, ones)  # a copy of `conv` that has a bias
    fused.bias.add_((conv.weight * shift.reshape(1, -1, 1, 1)).sum((1, 2, 3)))  # W * shift, summed over inputs
    fused.weight.mul_(scale.reshape(1, -1, 1, 1))  # scale each input channel
    return fused


@torch.no_grad()
def fold_preceding_batchnorm(bn: nn.modules.batchnorm._BatchNorm, conv: nn.Conv2d) -> nn.Conv2d:
    """Return a new Conv2d (with bias) equal to `conv(bn(x))` in eval mode (see `fold_input_affine`)."""
    return fold_input_affine(conv, *batchnorm_scale_shift(bn))
