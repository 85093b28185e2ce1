"""The per-epoch progress bar: epoch, memory, running mean losses, instances and image size of the batch."""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from engine.hooks.base import Hook

if TYPE_CHECKING:
    from engine.trainer import Trainer


class ProgressBarHook(Hook):
    main_process_only = True

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def before_epoch(self, trainer: Trainer) -> None:
        header = ("Epoch", "mem", *trainer.loss_names, "Instances", "Size")
        # on the bar's stream (stderr): the header labels the bar's numbers, and a log of stdout alone, which has
        # the epoch's values as one line (EpochLineHook), would otherwise show headers with nothing under them
        tqdm.write(("\n" + "%11s" * len(header)) % header, file=sys.stderr)
        self.bar = tqdm(total=trainer.num_batches, bar_format="{l_bar}{bar:10}{r_bar}", file=sys.stderr)

    def after_step(self, trainer: Trainer) -> None:
        losses = trainer.mean_losses.tolist()
        self.bar.set_description(
            ("%11s" * 2 + "%11.4g" * (len(losses) + 2))
            % (
                f"{trainer.epoch + 1}/{trainer.options.epochs}",
                memory_text(trainer.device),
                *losses,
                trainer.targets.shape[0],
                trainer.images.shape[-1],
            ),
            refresh=False,
        )
        self.bar.update(1)

    def after_epoch(self, trainer: Trainer) -> None:
        self.bar.close()


def memory_text(device: torch.device) -> str:
    """Reserved CUDA memory, or on CPU the process's peak resident memory, in GB."""
    if device.type == "cuda":
        return f"{torch.cuda.memory_reserved(device) / 1e9:.3g}G"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.3g}G"  # Linux reports kB
