"""Re-estimates BatchNorm statistics of the EMA model on a few plain training images before it is validated and
saved: by default the stem's only (the BatchNorms an image reaches before its first activation), on 64 images
(--bn-calibration N, --bn-calibration-scope stem|all; 0 images: off).

Why the stem, by default: its running statistics average batches of augmented images (HSV jitter, scale, mosaic),
and they describe plain images worse than statistics re-measured on plain ones; it is the one layer whose inputs
the augmentation changes directly. Re-scoring every saved epoch of 20-epoch runs on the trees data (weights
unchanged) with the stem re-measured raised the mean of the last five epochs' held-out mAP50-95 from 0.031 to
0.036 (yolo11n) and from 0.021 to 0.032 (yolov5s_mobileone, the main command, whose curve otherwise dips for five
epochs after mosaic closes), and lifted yolov5n's late epochs of a 60-epoch run at nearly every epoch. It costs
the first convolution over the images per epoch (the forward pass stops after the stem): 1.7-1.9 s for the main
command on one thread, against 29 s for all BatchNorms. Why not all BatchNorms: that cost, and on yolov5n it
lowered the end of a 20-epoch run (0.028 -> 0.013-0.018 with 32 images). The figures are in
benchmarks/results/anchor_convergence.md, items 3 and 7.

The images are the same every epoch (evenly spaced over the training set, letterboxed like validation images,
no augmentation), and only BatchNorm layers run in training mode (dropout and drop-path stay off), so the result
is a function of the weights alone: runs and resumed runs stay exact. The training model is not touched: the
weights follow the same path with or without it; only what is validated and saved differs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from engine.hooks.base import Hook
from utils.letterbox import letterbox
from utils.torch_utils import unwrap_model

BatchNorm = nn.modules.batchnorm._BatchNorm

if TYPE_CHECKING:
    from dataio.dataset import YoloDataset
    from engine.trainer import Trainer


class _StopForward(Exception):
    """Raised by a forward hook once every BatchNorm being re-measured has run: the rest of the model is not needed."""


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[torch.Tensor], only: Sequence[nn.Module] | None = None
) -> int:
    """Replace BatchNorm layers' running mean and variance by their average over `batches` (the model's other
    layers in eval mode): every BatchNorm, or those in `only`, in which case each batch's forward pass stops
    once they have all run (the stem's alone cost its convolutions). Returns the number of layers updated."""
    tracked = [m for m in model.modules() if isinstance(m, BatchNorm) and m.track_running_stats]
    norms = tracked if only is None else [m for m in tracked if any(m is n for n in only)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    pending: set[int] = set()

    def stop_when_all_ran(module: nn.Module, inputs: Any, output: Any) -> None:
        pending.discard(id(module))
        if not pending:
            raise _StopForward

    handles = [m.register_forward_hook(stop_when_all_ran) for m in norms] if only is not None else []
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below, not an exponential one
        m.train()
    try:
        for images in batches:
            pending.update(id(m) for m in norms)
            with contextlib.suppress(_StopForward):
                model(images)
    finally:
        for handle in handles:
            handle.remove()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)


# The nonlinearities that end a stem: the BatchNorms that run before the first of them see the pixels through
# convolutions only (one, or the parallel branches of a re-parameterisable block such as MobileOne's stem).
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.LeakyReLU,
    nn.Mish,
    nn.ELU,
    nn.PReLU,
    nn.Hardsigmoid,
    nn.Sigmoid,
)


@torch.no_grad()
def stem_batchnorms(model: nn.Module, imgsz: int = 64) -> list[nn.Module]:
    """The stem's BatchNorms: those an image passes through before the first activation after them (the one after
    the first convolution, or one per branch of a multi-branch stem), found by running a blank `imgsz` image. Only
    the first BatchNorm when no activation module follows it (an activation applied as a function); [] when none."""
    order: list[nn.Module] = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        order.append(module)

    def stop_after_stem(module: nn.Module, inputs: Any, output: Any) -> None:
        if order:
            raise _StopForward

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, BatchNorm)]
    handles += [m.register_forward_hook(stop_after_stem) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    was_training = model.training
    model.eval()  # eval: the probe must not move any running statistics
    stopped = False
    try:
        parameter = next(model.parameters(), torch.zeros(()))
        model(torch.zeros(1, 3, imgsz, imgsz, device=parameter.device, dtype=parameter.dtype))
    except _StopForward:
        stopped = True
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return order if stopped else order[:1]


def letterboxed_batches(dataset: YoloDataset, imgsz: int, count: int, batch_size: int) -> list[torch.Tensor]:
    """`count` images of `dataset` evenly spaced over it, letterboxed to `imgsz` without augmentation, as uint8
    RGB batches of `batch_size`."""
    indices = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    images = []
    for index in indices:
        # a file that stopped decoding after the scan gives way to the next readable one (the dataset warns once)
        image = dataset.load_readable(int(index))[1][0]
        boxed = letterbox(image, imgsz, auto=False)[0]
        images.append(torch.from_numpy(np.ascontiguousarray(boxed[:, :, ::-1].transpose(2, 0, 1))))  # BGR -> RGB
    return [torch.stack(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]


class BatchNormStatsHook(Hook):
    """Before each validation (and before the last epoch's checkpoint), re-measures the EMA model's BatchNorm
    statistics (the stem's, or all with --bn-calibration-scope all) on --bn-calibration training images (0:
    never). Comes before the evaluation hook."""

    main_process_only = True

    def __init__(self) -> None:
        # read once, reused every epoch; kept as uint8 (a quarter of float32's memory: 64 images at 640 px are 79 MB)
        self.batches: list[torch.Tensor] | None = None

    def after_epoch(self, trainer: Trainer) -> None:
        o = trainer.options
        if o.bn_calibration <= 0 or (o.noval and trainer.epoch + 1 != o.epochs):
            return
        if self.batches is None:
            self.batches = letterboxed_batches(
                trainer.train_set, o.imgsz, o.bn_calibration, trainer.batch_per_process
            )  # evenly spaced training images, letterboxed as validation images are, in training-size batches
        model = trainer.ema.ema if trainer.ema is not None else unwrap_model(trainer.model)
        only = None
        if o.bn_calibration_scope == "stem":
            only = stem_batchnorms(model, int(unwrap_model(trainer.model).stride.max()) * 2)
        batches = (
            b.to(trainer.device, non_blocking=True).float().div_(255).contiguous(memory_format=trainer.memory_format)
            for b in self.batches
        )
        recalibrate_batchnorm(model, batches, only=only)
