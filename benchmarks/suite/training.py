"""Training throughput: our trainer's own step, phase by phase, the data loader alone, and (with the reference
packages importable) one training step of ours against theirs on the same real batch, interleaved."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
import yaml

from benchmarks.suite.step_timer import StepTimer, StopTraining
from benchmarks.suite.timing import interleaved_medians
from engine.hooks import default_hooks
from engine.hyperparameters import hyperparameters_for
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from losses import build_loss
from models.detection_model import DetectionModel
from utils.channels_last import to_channels_last


@dataclass
class TrainingProfile:
    timer: StepTimer
    loader_images_per_s: float  # the training loader alone (augmentation included), default workers
    batch: tuple  # one real training batch (images uint8, targets), for the step comparison


def loader_images_per_second(trainer: Trainer, batches: int) -> float:
    """Images/s of `trainer`'s training loader alone over up to `batches` batches after the first."""
    iterator = iter(trainer.train_loader)
    next(iterator)  # the first batch pays for starting workers, if any
    images, start = 0, time.perf_counter()
    for _, batch in zip(range(batches), iterator):
        images += len(batch[0])
    return images / (time.perf_counter() - start)


def profile_training(
    cfg: str,
    data: str = "trees.yaml",
    imgsz: int = 416,
    batch_size: int = 16,
    steps: int = 8,
    warmup: int = 2,
    loss: str | None = None,
    channels_last: bool = True,
) -> TrainingProfile:
    """Run our trainer (train.py's loop and defaults) until `steps` steps after `warmup` are timed."""
    timer = StepTimer(steps, warmup)
    with TemporaryDirectory() as project:
        options = TrainOptions(
            cfg=cfg,
            data=data,
            loss=loss,
            imgsz=imgsz,
            batch_size=batch_size,
            epochs=100,
            project=project,
            device="cpu",
            noplots=True,
            channels_last=channels_last,
        )
        trainer = Trainer(options, hooks=[*default_hooks(), timer])
        with contextlib.suppress(StopTraining):
            trainer.train()
        loader_rate = loader_images_per_second(trainer, batches=max(steps, 4))
        images, targets, *_ = next(iter(trainer.train_loader))
    return TrainingProfile(timer, loader_rate, (images, targets))


def our_training_step(cfg: str, images: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    """Forward, our default loss, backward and an SGD step, channels-last as our trainer runs it (nc=1)."""
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=1).train()
    to_channels_last(model, torch.device("cpu"))
    loss_fn = build_loss(model, hyperparameters_for(model), imgsz=images.shape[-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = (images.float() / 255).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        loss, _ = loss_fn(model(x), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def reference_training_step(
    package: str, config: str, images: torch.Tensor, targets: torch.Tensor
) -> Callable[[], None]:
    """The same step with the reference package's model and loss (nc=1, their default hyperparameters)."""
    torch.manual_seed(0)
    x = images.float() / 255
    if package == "ultralytics":
        from ultralytics.cfg import get_cfg
        from ultralytics.nn.tasks import DetectionModel as TheirModel

        model = TheirModel(config, nc=1, verbose=False).train()
        model.args = get_cfg()
        batch = {"img": x, "batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:]}
        compute = lambda: model.loss(batch)[0].sum()  # noqa: E731
    else:
        import yolov5
        from yolov5.models.yolo import Model
        from yolov5.utils.loss import ComputeLoss

        model = Model(str(Path(yolov5.__file__).parent / "models" / config), nc=1).train()
        hyp_file = Path(yolov5.__file__).parent / "data" / "hyps" / "hyp.scratch-low.yaml"
        model.hyp = yaml.safe_load(hyp_file.read_text())
        loss_fn = ComputeLoss(model)
        compute = lambda: loss_fn(model(x), targets)[0].sum()  # noqa: E731
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        compute().backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def compare_training_steps(pairs: list[tuple[str, str]], batch: tuple, runs: int) -> dict[str, tuple[float, float]]:
    """For each (our config, reference package): (our images/s, theirs), one step each per round, interleaved."""
    images, targets = batch
    results = {}
    for config, package in pairs:
        steps = {
            "ours": our_training_step(config, images, targets),
            "theirs": reference_training_step(package, config, images, targets),
        }
        medians = interleaved_medians(steps, runs, warmup=1)
        results[config] = (1000 * len(images) / medians["ours"], 1000 * len(images) / medians["theirs"])
    return results
