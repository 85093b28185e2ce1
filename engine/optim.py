"""Optimiser construction (parameter groups without decay on norms and biases) and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.errors import OptionError

OPTIMIZERS = ("SGD", "Adam", "AdamW")


@dataclass(frozen=True)
class OptimizerHyp:
    """The optimiser and schedule section of a hyperparameter file (data/hyps/*.yaml)."""

    lr0: float  # initial learning rate (SGD 1e-2, Adam/AdamW 1e-3)
    lrf: float  # final learning rate as a fraction of lr0
    momentum: float  # SGD momentum / Adam beta1
    weight_decay: float  # applied to conv and linear weights only (not BatchNorm, not biases)
    warmup_epochs: float  # fractions allowed
    warmup_momentum: float = 0.8  # momentum (Adam beta1) at the start of warm-up
    warmup_bias_lr: float = 0.1  # the biases' learning rate at the start of warm-up


def build_optimizer(
    model: nn.Module, name: str = "SGD", lr: float = 0.01, momentum: float = 0.937, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    """Three groups: 0 = norm weights (no decay), 1 = other weights (decay), 2 = biases (no decay).

    Decay on BatchNorm scales or biases only shrinks them towards a worse optimum; the references exclude them.
    Frozen parameters (requires_grad False) are left out.
    """
    norm_weights, weights, biases = [], [], []
    norm_types = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if param_name == "bias":
                biases.append(param)
            elif isinstance(module, norm_types):
                norm_weights.append(param)
            else:
                weights.append(param)
    if name == "SGD":
        optimizer = torch.optim.SGD(norm_weights, lr=lr, momentum=momentum, nesterov=True)
    elif name == "Adam":
        optimizer = torch.optim.Adam(norm_weights, lr=lr, betas=(momentum, 0.999))
    elif name == "AdamW":
        optimizer = torch.optim.AdamW(norm_weights, lr=lr, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise OptionError(f"--optimizer {name!r} is not one of {', '.join(OPTIMIZERS)}")
    optimizer.add_param_group({"params": weights, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases, "weight_decay": 0.0})
    return optimizer


def lr_lambda(epochs: int, final_fraction: float, cosine: bool = False) -> Callable[[int], float]:
    """Multiplier of lr0 per epoch: linear or cosine decay from 1 to `final_fraction` over `epochs`."""
    if cosine:
        return lambda epoch: ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (final_fraction - 1) + 1
    return lambda epoch: (1 - epoch / epochs) * (1.0 - final_fraction) + final_fraction


def warmup_values(
    iteration: int,
    warmup_iterations: int,
    epoch_lr: float,
    hyp: OptimizerHyp,
) -> tuple[list[float], float]:
    """Learning rates for the three groups and the momentum during warm-up.

    Biases start high (warmup_bias_lr) and fall to the epoch's lr, other groups rise from 0; momentum rises
    from warmup_momentum to momentum.
    """
    fraction = iteration / warmup_iterations
    rates = [
        float(_interp(fraction, 0.0, epoch_lr)),
        float(_interp(fraction, 0.0, epoch_lr)),
        float(_interp(fraction, hyp.warmup_bias_lr, epoch_lr)),
    ]
    momentum = float(_interp(fraction, hyp.warmup_momentum, hyp.momentum))
    return rates, momentum


def _interp(fraction: float, start: float, end: float) -> float:
    return start + (end - start) * min(max(fraction, 0.0), 1.0)
