"""The exponential moving average of the weights: what validation measures and checkpoints keep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.ema import ModelEMA
from engine.hooks.base import Hook

if TYPE_CHECKING:
    from engine.trainer import Trainer


class EMAHook(Hook):
    """Creates `trainer.ema` (restored from a resumed checkpoint) and updates it after every optimiser step."""

    main_process_only = True

    def before_train(self, trainer: Trainer) -> None:
        trainer.ema = ModelEMA(trainer.model)
        checkpoint = trainer.resume_checkpoint
        if checkpoint is not None and checkpoint.get("ema") is not None:
            trainer.ema.ema.load_state_dict(checkpoint["ema"])
            trainer.ema.updates = int(checkpoint.get("ema_updates", 0))

    def after_optimizer_step(self, trainer: Trainer) -> None:
        trainer.ema.update(trainer.model)
