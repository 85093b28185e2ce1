"""Warm-up, then the per-epoch learning-rate schedule (linear or cosine from lr0 to lr0 * lrf)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.hooks.base import Hook
from engine.optim import lr_lambda, warmup_values

if TYPE_CHECKING:
    from engine.trainer import Trainer


class LRScheduleHook(Hook):
    """Warm-up over the first `warmup_epochs` (at least `--min-warmup-iters` iterations): learning rates and
    momentum ramp per iteration and gradient accumulation grows from 1 to nbs / batch size. The schedule steps
    once per epoch."""

    def __init__(self) -> None:
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.warmup_iters = -1

    def before_train(self, trainer: Trainer) -> None:
        o, hyp = trainer.options, trainer.hyp.optimizer
        self.lr_fn = lr_lambda(o.epochs, hyp.lrf, o.cos_lr)
        # A resumed run picks the schedule up at the epoch it starts: the restored optimiser holds each group's
        # initial_lr, and the scheduler's epoch counter then matches a run that never stopped.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            trainer.optimizer, lr_lambda=self.lr_fn, last_epoch=trainer.start_epoch - 1
        )
        warmup_epochs = hyp.warmup_epochs
        iterations = max(round(warmup_epochs * trainer.num_batches), o.min_warmup_iters) if warmup_epochs > 0 else 0
        # a warm-up that rounds to no iteration (0.1 epochs of 4 batches) is none, not a ramp over zero steps
        self.warmup_iters = iterations if iterations > 0 else -1

    def before_step(self, trainer: Trainer) -> None:
        iteration = trainer.iteration
        if iteration > self.warmup_iters:
            return
        o, hyp = trainer.options, trainer.hyp.optimizer
        epoch_lr = hyp.lr0 * self.lr_fn(trainer.epoch)
        rates, momentum = warmup_values(iteration, self.warmup_iters, epoch_lr, hyp)
        trainer.accumulate = max(1, round(np.interp(iteration, [0, self.warmup_iters], [1, o.nbs / o.batch_size])))
        for group, rate in zip(trainer.optimizer.param_groups, rates):
            group["lr"] = rate
            if "momentum" in group:
                group["momentum"] = momentum
            elif "betas" in group:
                group["betas"] = (momentum, group["betas"][1])

    def after_epoch(self, trainer: Trainer) -> None:
        self.scheduler.step()
