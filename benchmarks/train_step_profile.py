"""Where a training step's time goes: data, forward, loss, backward, optimiser, EMA, bookkeeping.

    python benchmarks/train_step_profile.py --cfg yolov5s_mobileone.yaml --steps 12 --threads 2
    python benchmarks/train_step_profile.py --cfg yolo11n.yaml --loss DFLLoss --imgsz 416 --batch-size 16

The trainer runs its own loop on the bundled trees data; a hook and two forward hooks on the model take time stamps
between the phases, so what is measured is exactly the step train.py runs (channels-last, EMA, clipping). The first
`--warmup` steps are left out (allocator and oneDNN caches). Prints a table of mean milliseconds per phase and
training images/s; `--out FILE.md` also writes it with the machine and versions.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.hooks import default_hooks
from engine.hooks.base import Hook
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from utils.torch_utils import unwrap_model

PHASES = ("data", "forward", "loss", "backward", "optimizer", "ema + hooks")


class StopTraining(Exception):
    """Raised by the timer once it has seen enough steps."""


class StepTimer(Hook):
    """Time stamps at the trainer's events (and the model's forward, via `attach`) -> milliseconds per phase."""

    def __init__(self, steps: int, warmup: int) -> None:
        self.steps, self.warmup = steps, warmup
        self.totals: dict[str, float] = defaultdict(float)
        self.counted = 0
        self.stamps: dict[str, float] = {}
        self.batch_size = 0

    def attach(self, model: torch.nn.Module) -> None:
        model.register_forward_pre_hook(lambda *_: self._stamp("forward_start"))
        model.register_forward_hook(lambda *_: self._stamp("forward_end"))

    def before_train(self, trainer: Trainer) -> None:
        self.attach(unwrap_model(trainer.model))

    def _stamp(self, name: str) -> None:
        self.stamps[name] = time.perf_counter()

    def before_epoch(self, trainer: Trainer) -> None:
        self._stamp("step_end")

    def before_step(self, trainer: Trainer) -> None:
        self._stamp("step_start")  # the loader's next() ran between the last step's end and now

    def before_backward(self, trainer: Trainer) -> None:
        self._stamp("loss_end")

    def before_optimizer_step(self, trainer: Trainer) -> None:
        self._stamp("backward_end")

    def after_optimizer_step(self, trainer: Trainer) -> None:
        self._stamp("optimizer_end")

    def after_step(self, trainer: Trainer) -> None:
        s = self.stamps
        now = time.perf_counter()
        stepped = "backward_end" in s and s["backward_end"] > s["loss_end"]
        phases = {
            "data": s["step_start"] - s["step_end"],
            "forward": s["forward_end"] - s["forward_start"],
            "loss": s["loss_end"] - s["forward_end"],
            "backward": (s["backward_end"] if stepped else now) - s["loss_end"],
            "optimizer": s["optimizer_end"] - s["backward_end"] if stepped else 0.0,
            "ema + hooks": now - (s["optimizer_end"] if stepped else now),
        }
        s["step_end"] = now
        full_batch = len(trainer.images) == trainer.options.batch_size  # an epoch's short last batch is left out
        self.batch_size = trainer.options.batch_size
        if trainer.iteration >= self.warmup and full_batch:
            for name, seconds in phases.items():
                self.totals[name] += seconds
            self.counted += 1
        if self.counted >= self.steps:
            raise StopTraining

    def table(self) -> str:
        total = sum(self.totals.values())
        rows = ["| phase | ms per step | share |", "|---|---|---|"]
        for name in PHASES:
            ms = 1000 * self.totals[name] / self.counted
            rows.append(f"| {name} | {ms:.0f} | {100 * self.totals[name] / total:.0f}% |")
        rows.append(f"| **step** | **{1000 * total / self.counted:.0f}** | |")
        rows.append(f"\ntraining images/s: {self.batch_size * self.counted / total:.1f}")
        return "\n".join(rows)


def profile(args: argparse.Namespace) -> StepTimer:
    """Run the trainer until `args.steps` steps after `args.warmup` are timed."""
    timer = StepTimer(args.steps, args.warmup)
    with TemporaryDirectory() as project:
        options = TrainOptions(
            cfg=args.cfg,
            data=args.data,
            loss=args.loss,
            imgsz=args.imgsz,
            batch_size=args.batch_size,
            epochs=100,
            project=project,
            device="cpu",
            noplots=True,
            channels_last=args.channels_last,
        )
        trainer = Trainer(options, hooks=[*default_hooks(), timer])
        with contextlib.suppress(StopTraining):
            trainer.train()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    parser.add_argument("--data", default="trees.yaml")
    parser.add_argument("--loss", default=None)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timer = profile(args)
    header = (
        f"{args.cfg}, loss {args.loss or 'default'}, {args.imgsz} px, batch {args.batch_size}, "
        f"{args.threads} threads, channels-last {args.channels_last}, {timer.counted} steps after {args.warmup}; "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    print(header + "\n\n" + timer.table())
    if args.out:
        Path(args.out).write_text(f"# Training step profile\n\n{header}\n\n{timer.table()}\n")


if __name__ == "__main__":
    main()
