"""A training hook that times the phases of each step of the trainer's own loop: data, forward, loss, backward,
optimiser, EMA and other hooks (a forward pre/post hook on the model splits forward from loss)."""

from __future__ import annotations

import time
from collections import defaultdict

import torch

from engine.hooks.base import Hook
from engine.trainer import Trainer
from utils.torch_utils import unwrap_model

PHASES = ("data", "forward", "loss", "backward", "optimizer", "ema + hooks")


class StopTraining(Exception):
    """Raised by the timer once it has seen enough steps."""


class StepTimer(Hook):
    """Time stamps at the trainer's events -> mean milliseconds per phase over full batches after `warmup` steps."""

    def __init__(self, steps: int, warmup: int) -> None:
        self.steps, self.warmup = steps, warmup
        self.totals: dict[str, float] = defaultdict(float)
        self.counted = 0
        self.stamps: dict[str, float] = {}
        self.batch_size = 0

    def _stamp(self, name: str) -> None:
        self.stamps[name] = time.perf_counter()

    def before_train(self, trainer: Trainer) -> None:
        model: torch.nn.Module = unwrap_model(trainer.model)
        model.register_forward_pre_hook(lambda *_: self._stamp("forward_start"))
        model.register_forward_hook(lambda *_: self._stamp("forward_end"))

    def before_epoch(self, trainer: Trainer) -> None:
        self._stamp("step_end")  # validation and epoch bookkeeping are not a step's data time

    def before_step(self, trainer: Trainer) -> None:
        self._stamp("step_start")  # the loader's next() ran between the last step's end and now

    def before_backward(self, trainer: Trainer) -> None:
        self._stamp("loss_end")

    def before_optimizer_step(self, trainer: Trainer) -> None:
        self._stamp("backward_end")

    def after_optimizer_step(self, trainer: Trainer) -> None:
        self._stamp("optimizer_end")

    def after_step(self, trainer: Trainer) -> None:
        s, now = self.stamps, time.perf_counter()
        stepped = s.get("backward_end", 0.0) > s["loss_end"]  # an optimiser step came in this batch
        phases = {
            "data": s["step_start"] - s["step_end"],
            "forward": s["forward_end"] - s["forward_start"],
            "loss": s["loss_end"] - s["forward_end"],
            "backward": (s["backward_end"] if stepped else now) - s["loss_end"],
            "optimizer": s["optimizer_end"] - s["backward_end"] if stepped else 0.0,
            "ema + hooks": now - s["optimizer_end"] if stepped else 0.0,
        }
        s["step_end"] = now
        self.batch_size = trainer.options.batch_size
        full_batch = len(trainer.images) == self.batch_size  # an epoch's short last batch is left out
        if trainer.iteration >= self.warmup and full_batch:
            for name, seconds in phases.items():
                self.totals[name] += seconds
            self.counted += 1
        if self.counted >= self.steps:
            raise StopTraining

    def milliseconds(self) -> dict[str, float]:
        """Mean milliseconds per counted step, by phase."""
        return {name: 1000 * self.totals[name] / max(self.counted, 1) for name in PHASES}

    def images_per_second(self) -> float:
        total = sum(self.totals.values())
        return self.batch_size * self.counted / total if total else 0.0

    def table(self) -> str:
        ms = self.milliseconds()
        total = sum(ms.values())
        rows = ["| phase | ms per step | share |", "|---|---|---|"]
        rows += [f"| {name} | {value:.0f} | {100 * value / total:.0f}% |" for name, value in ms.items()]
        rows.append(f"| **step** | **{total:.0f}** | |")
        return "\n".join(rows) + f"\n\ntraining images/s: {self.images_per_second():.1f}"
