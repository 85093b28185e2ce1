"""Mosaic (and mixup) off for the last `--close-mosaic` epochs, so the model ends on images like the real ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hooks.base import Hook

if TYPE_CHECKING:
    from engine.trainer import Trainer


class CloseMosaicHook(Hook):
    """Runs on every process: each has its own dataset. Checked every epoch, so a resumed run closes it again."""

    def before_epoch(self, trainer: Trainer) -> None:
        close = trainer.options.close_mosaic
        if close > 0 and trainer.epoch >= trainer.options.epochs - close:
            trainer.train_set.close_mosaic()
