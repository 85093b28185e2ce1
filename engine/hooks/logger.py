"""The logger interface: one hook that receives each epoch's scalars and the run's images.

A new logger (MLflow, Weights & Biases, ...) is one file: subclass LoggerHook and implement `log_scalars`
(and, if it shows images, `log_image`; `open` and `close` for its session).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.hooks.base import Hook

if TYPE_CHECKING:
    from engine.trainer import Trainer

TRAIN_BATCH_IMAGES = 3  # train_batch0..2.jpg, plotted from the first batches of the first epoch


class LoggerHook(Hook):
    """Calls `log_scalars(epoch_scalars(trainer), epoch)` after every epoch, and `log_image` with labels.jpg and
    train_batch0..2.jpg when the plots hook (earlier in the list) has written them."""

    main_process_only = True

    def open(self, trainer: Trainer) -> None:
        """Start the logger's session (once, before the first epoch)."""

    def log_scalars(self, values: dict[str, float], epoch: int) -> None:
        raise NotImplementedError

    def log_image(self, tag: str, path: Path, step: int) -> None:
        """Log the image file at `path` (nothing by default)."""

    def close(self) -> None:
        """End the session (after the last epoch)."""

    def before_train(self, trainer: Trainer) -> None:
        self.open(trainer)
        labels = trainer.save_dir / "labels.jpg"
        if trainer.start_epoch == 0 and labels.is_file():
            self.log_image("labels", labels, 0)

    def after_step(self, trainer: Trainer) -> None:
        if trainer.epoch == 0 and trainer.batch_index < TRAIN_BATCH_IMAGES:
            path = trainer.save_dir / f"train_batch{trainer.batch_index}.jpg"
            if path.is_file():
                self.log_image(path.stem, path, 0)

    def after_epoch(self, trainer: Trainer) -> None:
        self.log_scalars(epoch_scalars(trainer), trainer.epoch)

    def after_train(self, trainer: Trainer) -> None:
        self.close()


def epoch_scalars(trainer: Trainer) -> dict[str, float]:
    """The epoch's values by name, in results.csv's column order: train losses, metrics, validation losses and
    the learning rate of each parameter group (the rates the epoch trained with). Training has a column for every
    item a step logs (`trainer.loss_names`: a hook's, e.g. distillation, too); validation for the loss function's."""
    names = trainer.loss_fn.names
    metrics = trainer.metrics
    val_losses = trainer.val_losses or [0.0] * len(names)
    return {
        **{f"train/{name}_loss": float(v) for name, v in zip(trainer.loss_names, trainer.train_losses)},
        "metrics/precision": float(metrics.get("precision", 0.0)),
        "metrics/recall": float(metrics.get("recall", 0.0)),
        "metrics/mAP50": float(metrics.get("map50", 0.0)),
        "metrics/mAP50-95": float(metrics.get("map50_95", 0.0)),
        **{f"val/{name}_loss": float(v) for name, v in zip(names, val_losses)},
        **{f"lr/pg{i}": float(lr) for i, lr in enumerate(trainer.lrs)},
    }
