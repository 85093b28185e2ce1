"""Stop when fitness has not improved for --patience epochs (0: never)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hooks.base import Hook
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class EarlyStoppingHook(Hook):
    """Decides on rank 0; the trainer shares `stop_requested` with the other processes after the epoch's hooks."""

    main_process_only = True

    def after_epoch(self, trainer: Trainer) -> None:
        patience = trainer.options.patience
        if patience > 0 and trainer.epoch - trainer.best_epoch >= patience:
            trainer.stop_requested = True
            LOGGER.info(f"Stopping early: no improvement in {patience} epochs (best epoch {trainer.best_epoch + 1})")
