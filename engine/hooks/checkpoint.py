"""weights/last.pt every epoch, best.pt when fitness improved, epochN.pt every --save-period epochs; at the end
both are stripped to the EMA weights without optimiser state."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.hooks.base import Hook
from utils.checkpoint import load_checkpoint, save_checkpoint, write_checkpoint_file

if TYPE_CHECKING:
    from engine.trainer import Trainer


class CheckpointHook(Hook):
    """Comes after evaluation in the hook list: it saves the epoch's metrics and whether they improved."""

    main_process_only = True

    def after_epoch(self, trainer: Trainer) -> None:
        state = checkpoint_state(trainer)
        weights, epoch = trainer.weights_dir, trainer.epoch
        save_checkpoint(weights / "last.pt", trainer.model, **state)
        if trainer.improved:
            save_checkpoint(weights / "best.pt", trainer.model, **state)
        period = trainer.options.save_period
        if period > 0 and (epoch + 1) % period == 0:
            save_checkpoint(weights / f"epoch{epoch + 1}.pt", trainer.model, **state)

    def after_train(self, trainer: Trainer) -> None:
        for path in (trainer.weights_dir / "last.pt", trainer.weights_dir / "best.pt"):
            if path.exists():
                strip_optimizer(path)


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """Everything --resume needs besides the model: epoch, best fitness, EMA, optimiser, options, hyperparameters."""
    ema = trainer.ema
    return {
        "epoch": trainer.epoch,
        "best_fitness": trainer.best_fitness,
        "best_epoch": trainer.best_epoch,
        "ema": {k: v.detach().clone() for k, v in ema.ema.state_dict().items()} if ema is not None else None,
        "ema_updates": ema.updates if ema is not None else 0,
        "optimizer": trainer.optimizer.state_dict(),
        "train_args": trainer.options.to_dict(),
        "hyp": trainer.hyp.to_dict(),  # a plain dict: checkpoints load with weights_only=True
        "metrics": trainer.metrics,
    }


def strip_optimizer(path: Path) -> None:
    """Finished run: keep the EMA weights as the model and drop optimiser state (a smaller, final file)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("ema") is not None:
        ckpt["model"] = ckpt["ema"]
    ckpt.update(ema=None, optimizer=None, ema_updates=None)
    write_checkpoint_file(path, ckpt)
