"""A NaN or infinite loss skips its batch with a warning; --max-nan-steps of them in a row stop the run.

Without this guard a diverged run (e.g. lr0 far too high) trains on NaN for whole epochs and exits 0. A skipped
batch gets no backward pass and no place in the epoch's mean losses; when every batch since the last optimiser
step was skipped there is no step either (engine/trainer.py), so the weights stay as they were. The checkpoint
hook keeps weights that went non-finite anyway off disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine.hooks.base import Hook
from engine.train_setup import TrainingError
from utils import distributed as dist_utils
from utils.errors import UserError
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class NonFiniteLossError(TrainingError, UserError):
    """Training stopped because the loss stayed NaN or infinite for --max-nan-steps batches in a row."""


class NonFiniteLossHook(Hook):
    """Runs on every process: all of them skip a batch when any of them saw a non-finite loss, so the gradient
    all-reduces of DDP stay matched."""

    def __init__(self) -> None:
        self.in_a_row = 0

    def before_train(self, trainer: Trainer) -> None:
        limit = trainer.options.max_nan_steps
        if limit < 1:
            raise TrainingError(f"--max-nan-steps {limit}: must be >= 1")
        self.in_a_row = 0

    def before_backward(self, trainer: Trainer) -> None:
        loss = trainer.loss.detach()
        locally_finite = bool(torch.isfinite(loss).all())
        if not dist_utils.any_process(not locally_finite, loss.device):
            self.in_a_row = 0
            return
        trainer.skip_batch = True
        self.in_a_row += 1
        o, limit = trainer.options, trainer.options.max_nan_steps
        where = (
            f"epoch {trainer.epoch + 1}/{o.epochs}, batch {trainer.batch_index + 1}/{trainer.num_batches} "
            f"(iteration {trainer.iteration})"
        )
        value = f"{float(loss.float().sum()):g}" if not locally_finite else "non-finite on another process"
        if self.in_a_row >= limit:
            last = trainer.weights_dir / "last.pt"
            kept = f"; {last} holds the last epoch with finite weights" if last.is_file() else ""
            raise NonFiniteLossError(
                f"training stopped at {where}: the loss was NaN or infinite in {limit} batches in a row "
                f"(--max-nan-steps {limit}; is lr0 too high?){kept}"
            )
        LOGGER.warning(
            f"{where}: loss {value}; batch skipped (no backward, no optimiser step), "
            f"{self.in_a_row} in a row of at most {limit} (--max-nan-steps)"
        )
