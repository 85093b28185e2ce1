"""One line per finished epoch on stdout, with its losses and metrics: what a `nohup` log or a CI log keeps.

The progress bar writes its numbers to stderr and rewrites them in place, so a log of stdout alone held the
column headers of every epoch and none of the values; this line is the record that survives redirection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from engine.hooks.base import Hook
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class EpochLineHook(Hook):
    """`epoch 3/20: train box 1.234 cls 2.345 dfl 1.111 | P 0.512 R 0.401 mAP50 0.321 mAP50-95 0.123 |
    val box ... | lr 0.0099/0.0099/0.0099 | 61.2s`; an epoch --noval left unvalidated says `not validated` instead
    of metrics."""

    main_process_only = True

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def before_epoch(self, trainer: Trainer) -> None:
        self.started = time.perf_counter()

    def after_epoch(self, trainer: Trainer) -> None:
        LOGGER.info(epoch_line(trainer, time.perf_counter() - self.started))


def epoch_line(trainer: Trainer, seconds: float) -> str:
    """The line for the epoch just finished (see EpochLineHook)."""
    losses = " ".join(f"{name} {value:.4g}" for name, value in zip(trainer.loss_names, trainer.train_losses))
    parts = [f"epoch {trainer.epoch + 1}/{trainer.options.epochs}: train {losses}"]
    m = trainer.metrics
    if m:
        parts.append(
            f"P {m.get('precision', 0.0):.4g} R {m.get('recall', 0.0):.4g} "
            f"mAP50 {m.get('map50', 0.0):.4g} mAP50-95 {m.get('map50_95', 0.0):.4g}"
        )
        if trainer.val_losses:
            names = trainer.loss_fn.names  # validation computes the loss function's items only
            parts.append("val " + " ".join(f"{name} {value:.4g}" for name, value in zip(names, trainer.val_losses)))
    else:
        parts.append("not validated")
    parts.append("lr " + "/".join(f"{lr:.4g}" for lr in trainer.lrs))  # per parameter group, as results.csv
    parts.append(f"{seconds:.1f}s")
    return " | ".join(parts)
