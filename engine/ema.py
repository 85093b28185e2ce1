"""Exponential moving average of model weights, the weights that validation measures and checkpoints prefer."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from utils.torch_utils import unwrap_model


class ModelEMA:
    """Keeps `ema = d * ema + (1 - d) * model` for floating-point state, with a decay that ramps up from 0 so
    early, noisy weights are forgotten quickly: d = decay * (1 - exp(-updates / tau))."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(unwrap_model(model)).eval()
        self.ema.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        model_state = unwrap_model(model).state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(model_state[name].detach(), alpha=1 - d)
            else:  # e.g. BatchNorm's num_batches_tracked
                value.copy_(model_state[name])
