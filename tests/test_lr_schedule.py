"""The warm-up: a warm-up shorter than one iteration is none (it divided by zero: found by --evolve drawing
warmup_epochs 0.1 on a one-batch epoch)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.hooks import LRScheduleHook
from engine.optim import OptimizerHyp, build_optimizer


def fake_trainer(warmup_epochs: float, num_batches: int) -> SimpleNamespace:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    hyp = OptimizerHyp(lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=5e-4, warmup_epochs=warmup_epochs)
    options = SimpleNamespace(epochs=2, cos_lr=False, min_warmup_iters=0, nbs=4, batch_size=4)
    return SimpleNamespace(
        options=options,
        hyp=SimpleNamespace(optimizer=hyp),
        optimizer=build_optimizer(model, "SGD", hyp.lr0, hyp.momentum, hyp.weight_decay),
        start_epoch=0,
        num_batches=num_batches,
        iteration=0,
        epoch=0,
        accumulate=1,
    )


@pytest.mark.parametrize(("warmup_epochs", "num_batches", "iterations"), [(0.1, 1, -1), (0.0, 4, -1), (1.0, 4, 4)])
def test_warmup_iterations(warmup_epochs: float, num_batches: int, iterations: int) -> None:
    hook, trainer = LRScheduleHook(), fake_trainer(warmup_epochs, num_batches)
    hook.before_train(trainer)
    assert hook.warmup_iters == iterations
    hook.before_step(trainer)  # the first step: a ramp when there is a warm-up, the schedule's rate when not
    expected = 0.0 if iterations > 0 else 0.01
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
