"""weights/best.pt when fitness improved, then last.pt, every epoch; epochN.pt every --save-period epochs; at the
end both are stripped to the EMA weights without optimiser state, which marks the run as wrapped up.

With --nosave (YOLOv5's option) both files are written once, after the final epoch: the best epoch's checkpoint
waits in memory (tensor copies, no serialisation) until then. For short or throw-away runs (evolve trials, tiny
data) where writing the checkpoint every epoch costs more than the epoch; a run killed before the end cannot resume.

The order is what keeps the files consistent under a kill at any moment (each file is written atomically):
- best.pt before last.pt: last.pt names the best epoch, so the best.pt it names is already on disk. A kill
  between the two leaves best.pt one epoch ahead of last.pt; the resumed run redoes that epoch and writes both.
- best.pt stripped before last.pt: last.pt's `wrapped_up` flag is set last, so a kill anywhere in the wrap-up
  (final validation, plots, stripping) leaves it unset and `--resume` does the wrap-up again (engine/train_setup.py).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.hooks.base import Hook
from utils.atomic_write import atomic_write
from utils.checkpoint import checkpoint_dict, load_checkpoint, serialise_checkpoint, write_checkpoint_file
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
        self.best_in_memory: dict[str, Any] | None = None  # --nosave: best.pt's content until the final epoch
        self.written: dict[str, dict[str, Any] | None] = {}  # what the final epoch wrote, by file name

    def after_epoch(self, trainer: Trainer) -> None:
        weights, epoch = trainer.weights_dir, trainer.epoch
        final = training_done(trainer)
        if trainer.options.nosave and not final:
            if trainer.improved:
                self.keep_best_in_memory(trainer)
            return
        bad = weight_problems(trainer)
        if bad:
            LOGGER.warning(
                f"epoch {epoch + 1}: NaN or infinite values in {len(bad)} weight tensor(s), e.g. {bad[0]}; "
                f"not saving them: {weights} keeps the checkpoints of the last good epoch"
            )
            if self.best_in_memory is not None:  # --nosave: the last good best epoch still gets its file
                write_checkpoint_file(weights / "best.pt", self.best_in_memory)
            trainer.best_fitness, trainer.best_epoch = self.saved_best
            trainer.improved = False
            return
        ckpt = checkpoint_dict(trainer.model, **checkpoint_state(trainer))
        data = serialise_checkpoint(ckpt)  # one serialisation for every file
        best = ckpt if trainer.improved else self.best_in_memory
        if trainer.improved:
            atomic_write(weights / "best.pt", data)
        elif self.best_in_memory is not None:
            write_checkpoint_file(weights / "best.pt", self.best_in_memory)
        self.best_in_memory = None
        atomic_write(weights / "last.pt", data)
        self.saved_best = (trainer.best_fitness, trainer.best_epoch)
        period = trainer.options.save_period
        if period > 0 and (epoch + 1) % period == 0:
            atomic_write(weights / f"epoch{epoch + 1}.pt", data)
        if final:  # the wrap-up strips these without reading them back: a weights-only load costs more than an epoch
            self.written = {"best.pt": best, "last.pt": ckpt}

    def keep_best_in_memory(self, trainer: Trainer) -> None:
        """--nosave: hold this epoch's checkpoint (without optimiser state, which best.pt drops at the wrap-up)
        for best.pt; weights with a NaN or infinity are not kept, as they are not saved."""
        bad = weight_problems(trainer)
        if bad:
            LOGGER.warning(f"epoch {trainer.epoch + 1}: NaN or infinite values in {bad[0]}: not kept as best.pt")
            trainer.best_fitness, trainer.best_epoch = self.saved_best
            trainer.improved = False
            return
        state = {**checkpoint_state(trainer), "optimizer": None, "hook_state": copy.deepcopy(trainer.hook_state)}
        self.best_in_memory = checkpoint_dict(trainer.model, **state)
        self.saved_best = (trainer.best_fitness, trainer.best_epoch)

    def after_train(self, trainer: Trainer) -> None:
        for path in (trainer.weights_dir / "best.pt", trainer.weights_dir / "last.pt"):  # last.pt last: see above
            if path.exists():
                strip_optimizer(path, self.written.get(path.name))
        self.written = {}  # the tensors are not needed any more


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
        "training_done": training_done(trainer),
        "wrapped_up": False,
    }


def training_done(trainer: Trainer) -> bool:
    """No epoch is left to train after this one: it was the last, or a hook stopped the run."""
    return trainer.epoch + 1 >= trainer.options.epochs or trainer.stop_requested


def weight_problems(trainer: Trainer) -> list[str]:
    """Names of the model's and the EMA's weight tensors holding a NaN or an infinity."""
    bad = non_finite_tensors(unwrap_model(trainer.model).state_dict())
    if trainer.ema is not None:
        bad += [f"ema.{name}" for name in non_finite_tensors(trainer.ema.ema.state_dict())]
    return bad


def non_finite_tensors(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


def strip_optimizer(path: Path, written: dict[str, Any] | None = None) -> None:
    """Finished run: keep the EMA weights as the model and drop optimiser state (a smaller, final file).
    `written`: the checkpoint as this process wrote it to `path` (else it is read back)."""
    ckpt = dict(written) if written is not None else load_checkpoint(path)
    if ckpt.get("ema") is not None:
        ckpt["model"] = ckpt["ema"]
    ckpt.update(ema=None, optimizer=None, ema_updates=None, training_done=True, wrapped_up=True)
    write_checkpoint_file(path, ckpt)
