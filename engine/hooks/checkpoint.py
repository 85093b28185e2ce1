"""weights/best.pt when fitness improved, then last.pt, every epoch; epochN.pt every --save-period epochs; at the
end both are stripped to the EMA weights without optimiser state, which marks the run as wrapped up.

The order is what keeps the files consistent under a kill at any moment (each file is written atomically):
- best.pt before last.pt: last.pt names the best epoch, so the best.pt it names is already on disk. A kill
  between the two leaves best.pt one epoch ahead of last.pt; the resumed run redoes that epoch and writes both.
- best.pt stripped before last.pt: last.pt's `wrapped_up` flag is set last, so a kill anywhere in the wrap-up
  (final validation, plots, stripping) leaves it unset and `--resume` does the wrap-up again (engine/train_setup.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.hooks.base import Hook
from utils.atomic_write import atomic_write
from utils.checkpoint import checkpoint_bytes, load_checkpoint, write_checkpoint_file
from utils.logging import LOGGER
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from engine.trainer import Trainer


class CheckpointHook(Hook):
    """Comes after evaluation and early stopping in the hook list: it saves the epoch's metrics, whether they
    improved, and whether training is over (the last epoch, or stopped early).

    Weights with a NaN or infinity are never saved: the previous last.pt and best.pt stay, with a warning, and the
    best fitness and epoch go back to what those files record, so last.pt keeps naming a best.pt that exists.
    """

    main_process_only = True

    def before_train(self, trainer: Trainer) -> None:
        self.saved_best = (trainer.best_fitness, trainer.best_epoch)

    def after_epoch(self, trainer: Trainer) -> None:
        weights, epoch = trainer.weights_dir, trainer.epoch
        bad = non_finite_tensors(unwrap_model(trainer.model).state_dict())
        if trainer.ema is not None:
            bad += [f"ema.{name}" for name in non_finite_tensors(trainer.ema.ema.state_dict())]
        if bad:
            LOGGER.warning(
                f"epoch {epoch + 1}: NaN or infinite values in {len(bad)} weight tensor(s), e.g. {bad[0]}; "
                f"not saving them: {weights} keeps the checkpoints of the last good epoch"
            )
            trainer.best_fitness, trainer.best_epoch = self.saved_best
            trainer.improved = False
            return
        data = checkpoint_bytes(trainer.model, **checkpoint_state(trainer))  # one serialisation for every file
        if trainer.improved:
            atomic_write(weights / "best.pt", data)
        atomic_write(weights / "last.pt", data)
        self.saved_best = (trainer.best_fitness, trainer.best_epoch)
        period = trainer.options.save_period
        if period > 0 and (epoch + 1) % period == 0:
            atomic_write(weights / f"epoch{epoch + 1}.pt", data)

    def after_train(self, trainer: Trainer) -> None:
        for path in (trainer.weights_dir / "best.pt", trainer.weights_dir / "last.pt"):  # last.pt last: see above
            if path.exists():
                strip_optimizer(path)


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """Everything --resume needs besides the model: epoch, best fitness, EMA, optimiser, options, hyperparameters,
    the hooks' own state, and where the run stands (`training_done`: no epoch left to train; `wrapped_up`: the
    wrap-up finished too)."""
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
        "hook_state": trainer.hook_state,  # what hooks keep across a resume (e.g. distillation adapters)
        "training_done": trainer.epoch + 1 >= trainer.options.epochs or trainer.stop_requested,
        "wrapped_up": False,
    }


def non_finite_tensors(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def strip_optimizer(path: Path) -> None:
    """Finished run: keep the EMA weights as the model and drop optimiser state (a smaller, final file)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("ema") is not None:
        ckpt["model"] = ckpt["ema"]
    ckpt.update(ema=None, optimizer=None, ema_updates=None, training_done=True, wrapped_up=True)
    write_checkpoint_file(path, ckpt)
