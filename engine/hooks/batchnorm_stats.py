"""Optionally re-estimates the EMA model's BatchNorm statistics on a few training images before it is validated and
saved (--bn-calibration N; off by default).

Why it exists: in a run from scratch the weights move faster than BatchNorm's running statistics follow. Those
average the last ~1/momentum batches, each measured under older weights, so in eval mode the early epochs
normalise with stale statistics: on the trees data a yolov5n after 5 epochs scored mAP50-95 0.0001 with its
running statistics and 0.002-0.003 with statistics re-measured on 32-64 training images, the same weights.
Why it is off: at the end of the same 20-epoch run the running statistics (many augmented batches) generalised
better to the held-out sites than 32 re-measured images (0.028 against 0.013-0.018), so the default recipe keeps
them. Keeping only the channels whose statistics are far off did not help either. The figures are in
benchmarks/results/anchor_convergence.md. Useful when early validation figures matter (short runs, curves).

The images are the same every epoch (evenly spaced over the training set, letterboxed like validation images,
no augmentation), and only BatchNorm layers run in training mode (dropout and drop-path stay off), so the result
is a function of the weights alone: runs and resumed runs stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn

from engine.hooks.base import Hook
from utils.letterbox import letterbox
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from dataio.dataset import YoloDataset
    from engine.trainer import Trainer


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm layer's running mean and variance by their average over `batches` (the model's
    other layers in eval mode); returns the number of BatchNorm layers updated."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below, not an exponential one
        m.train()
    try:
        for images in batches:
            model(images)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


def calibration_batches(trainer: Trainer, count: int) -> list[torch.Tensor]:
    """`count` training images evenly spaced over the training set, letterboxed to the training size as
    validation images are, in batches of the training batch size."""
    batches = letterboxed_batches(trainer.train_set, trainer.options.imgsz, count, trainer.batch_per_process)
    return [b.to(trainer.device, non_blocking=True).float().div_(255) for b in batches]


def letterboxed_batches(dataset: YoloDataset, imgsz: int, count: int, batch_size: int) -> list[torch.Tensor]:
    """`count` images of `dataset` evenly spaced over it, letterboxed to `imgsz` without augmentation, as uint8
    RGB batches of `batch_size`."""
    indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    images = []
    for index in indices:
        image = dataset.load_image(int(index))[0]
        boxed = letterbox(image, imgsz, auto=False)[0]
        images.append(torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))))  # BGR -> RGB
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


class BatchNormStatsHook(Hook):
    """Before each validation (and before the last epoch's checkpoint), re-measures the EMA model's BatchNorm
    statistics on --bn-calibration training images (0, the default: never). Comes before the evaluation hook."""

    main_process_only = True

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] | None = None  # read once, reused every epoch

    def after_epoch(self, trainer: Trainer) -> None:
        o = trainer.options
        if o.bn_calibration <= 0 or (o.noval and trainer.epoch + 1 != o.epochs):
            return
        if self.batches is None:
            self.batches = calibration_batches(trainer, o.bn_calibration)
        model = trainer.ema.ema if trainer.ema is not None else unwrap_model(trainer.model)
        batches = (b.to(memory_format=trainer.memory_format) for b in self.batches)
        recalibrate_batchnorm(model, batches)
