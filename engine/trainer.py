"""The training core: setup (model, data, loss, optimiser) and the step (forward, loss, backward, optimiser step).

Everything else a run does (warm-up and schedule, EMA, validation, checkpoints, early stopping, logs, plots)
is a hook in engine/hooks/, called at the events of engine/hooks/base.py in the order of the hook list.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from dataio.data_config import load_data_config
from dataio.multiscale import random_rescale_batch
from engine.ema import ModelEMA
from engine.hooks import CallbackHook, Hook, HookList, check_event, default_hooks
from engine.hooks.base import Callback
from engine.hyperparameters import checkpoint_hyperparameters, hyperparameters_for
from engine.optim import build_optimizer
from engine.train_data import training_loader, validation_loader
from engine.train_options import DEFAULT_CFG, TrainOptions
from engine.train_setup import (
    TrainingError,
    checkpoint_training_done,
    freeze_layers,
    load_resume,
    read_named_weights,
    resolve_workers,
    set_batchnorm_momentum,
    transfer_weights,
    write_run_files,
)
from losses import DetectionLoss, build_loss
from models.backbones.weights import load_backbone_weights
from models.detection_model import DetectionModel
from utils import distributed as dist_utils
from utils.atomic_write import ensure_directory, remove_orphan_temp_files
from utils.channels_last import to_channels_last
from utils.files import RunDir, claim_run_dir
from utils.logging import LOGGER, set_verbosity
from utils.torch_utils import init_seeds, select_device, unwrap_model

__all__ = ["Trainer", "TrainingError", "train"]


class Trainer:
    """Runs one training job described by TrainOptions; `train()` returns the run directory.

    `hooks` replaces the default list (`engine.hooks.default_hooks()`; extend it to add your own), and
    `callbacks` maps event names to plain functions of the trainer, run after the hooks. Subclasses may
    override `build_model`, `build_data`, `build_loss`, `build_optimizer` and `run_step`.
    """

    def __init__(
        self,
        options: TrainOptions,
        hooks: Sequence[Hook] | None = None,
        callbacks: Mapping[str, Sequence[Callback]] | None = None,
    ) -> None:
        # hooks first: a misspelt event fails before anything is loaded, joined or created
        self.hooks = HookList(main_process=dist_utils.is_main_process())
        self.register_hooks(*(default_hooks() if hooks is None else hooks))
        if callbacks:
            self.register_hooks(CallbackHook(callbacks))
        self.resume_checkpoint: dict[str, Any] | None = None
        if options.resume:
            options, self.resume_checkpoint = load_resume(options)
        self.options = options
        self.device = select_device(options.device)
        self.ddp = dist_utils.init_distributed(self.device)
        self.rank = dist_utils.global_rank()
        self.world_size = dist_utils.world_size() if self.ddp else 1
        self.is_main = dist_utils.is_main_process()
        set_verbosity(self.is_main)
        if self.ddp and self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        init_seeds(options.seed + max(self.rank, 0), options.deterministic)

        self.run_dir: RunDir | None = None  # the directory this process claimed (not on resume or other ranks)
        if self.resume_checkpoint is not None:
            self.save_dir = Path(self.resume_checkpoint["_save_dir"])
        else:
            self.save_dir = self._claim_save_dir()
        self.weights_dir = self.save_dir / "weights"
        # State the hooks read and write (see engine/hooks/base.py for when each is set).
        self.epoch = self.start_epoch = self.iteration = self.batch_index = self.num_batches = 0
        self.best_fitness, self.best_epoch, self.improved = -1.0, 0, False
        self.stop_requested = False
        self.training_done = False  # a resumed run whose epochs are all trained: only the wrap-up is left
        self.skip_batch = False
        self.metrics: dict[str, float] = {}
        self.train_losses: list[float] = []
        self.val_losses: list[float] = []
        self.lrs: list[float] = []
        self.ema: ModelEMA | None = None
        # Names of the per-image loss items a step logs: the loss function's, then any a hook adds in before_train
        # (a hook that adds a name appends its item to trainer.loss_items in before_backward).
        self.loss_names: list[str] = []
        # State hooks keep across a resume: saved in checkpoints under "hook_state" (set it by after_epoch, before
        # the checkpoint hook runs); a resumed run's hooks find it in resume_checkpoint["hook_state"].
        self.hook_state: dict[str, Any] = {}

    def _claim_save_dir(self) -> Path:
        """Rank 0 creates <project>/<name>[N] with an exclusive mkdir, before any data is read, so two runs
        started together with the same name get exp and exp2; the other ranks are told which."""
        o = self.options
        claimed = None
        if self.is_main:
            self.run_dir = claim_run_dir(Path(o.project) / o.name, o.exist_ok)
            claimed = str(self.run_dir.path)
        return Path(dist_utils.broadcast_object(claimed))

    # ------------------------------------------------------------------ hooks
    def register_hooks(self, *hooks: Hook) -> None:
        """Append hooks to `self.hooks`; a misspelt event method raises UnknownEventError here."""
        self.hooks.register(*hooks)

    def add_callback(self, event: str, callback: Callback) -> None:
        """Run `callback(trainer)` at `event`, after the hooks registered so far."""
        self.hooks.register(CallbackHook({check_event(event): [callback]}))

    def fire(self, event: str) -> None:
        self.hooks.fire(event, self)

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Build everything a run needs; separate from __init__ so failures surface with clear messages."""
        o = self.options
        self.data = load_data_config(o.data)
        model = self.build_model()
        if self.resume_checkpoint is not None:  # the run's own values: an edited or moved --hyp file changes nothing
            self.hyp = checkpoint_hyperparameters(model, self.resume_checkpoint, str(o.resume), o.loss)
        else:
            self.hyp = hyperparameters_for(model, o.hyp, o.loss)  # read and checked once, here
        if o.label_smoothing:
            self.hyp = self.hyp.replace(label_smoothing=o.label_smoothing)
        self.build_data(model)
        # The head's preparation is AutoAnchor (anchor heads; DFL heads have none): --noautoanchor skips it
        if self.resume_checkpoint is None and not o.noautoanchor:
            model.head.prepare_training(self.train_set, self.hyp, o.imgsz, o.seed)
        elif o.noautoanchor and hasattr(model.head, "anchors"):
            LOGGER.info("AutoAnchor off (--noautoanchor): training with the anchors the model has")
        freeze_layers(model, o.freeze)
        if o.bn_momentum is not None:
            set_batchnorm_momentum(model, o.bn_momentum)
        model.to(self.device)
        self.memory_format = torch.channels_last if o.channels_last else torch.contiguous_format
        # channels-last except the convs whose CPU backward torch gets wrong in it (kept in NCHW, named here)
        self.nchw_convs = to_channels_last(model, self.device) if o.channels_last else []
        self.loss_fn = self.build_loss(model)
        self.loss_names = list(self.loss_fn.names)
        self.optimizer = self.build_optimizer(model)
        self.amp = o.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if self.resume_checkpoint is not None:
            self._restore_training_state(self.resume_checkpoint)
        if self.ddp:
            if o.sync_bn:
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.model = model
        if self.is_main:
            ensure_directory(self.weights_dir)
            for directory in (self.save_dir, self.weights_dir):  # what a kill left mid-write in this run
                remove_orphan_temp_files(directory)
            write_run_files(self.save_dir, o, self.hyp)

    def model_config(self) -> str | dict[str, Any] | None:
        """The config a new run builds its model from: --cfg (the Python API's model object gives its own); None
        for the --weights file's own model (ours, or YOLOv5 / ultralytics imported), else the default config."""
        return self.options.cfg

    def build_model(self) -> DetectionModel:
        """The model from --cfg (with --weights / --backbone-weights), or the resumed checkpoint's."""
        o, ckpt = self.options, self.resume_checkpoint
        if ckpt is not None:
            model = DetectionModel(ckpt["model_yaml"], in_channels=ckpt["in_channels"])
            model.load_state_dict(ckpt["model"])
            return model
        weights = read_named_weights(o.weights, "--weights") if o.weights else None
        cfg = self.model_config() or (weights["model_yaml"] if weights else DEFAULT_CFG)  # else the weights' model
        model = DetectionModel(cfg, nc=1 if o.single_cls else self.data.nc, scale=o.scale)
        model.names = {0: "item"} if o.single_cls else dict(self.data.names)
        if weights:
            transfer_weights(model, weights, o.weights)
        if o.backbone_weights:
            load_backbone_weights(model, o.backbone_weights)
        return model

    def build_data(self, model: DetectionModel) -> None:
        """Training set and loader (sharded per process); the validation set and loader on rank 0."""
        o = self.options
        self.workers = resolve_workers(o.workers, self.device)
        self.batch_per_process = max(o.batch_size // self.world_size, 1)
        stride = int(model.stride.max())
        augmentation = self.hyp.augmentation
        self.train_set, self.train_loader = training_loader(
            o, self.data, augmentation, stride, self.batch_per_process, self.workers, self.rank, self.world_size
        )
        self.val_set, self.val_loader = None, None
        if self.is_main:
            self.val_set, self.val_loader = validation_loader(
                o, self.data, stride, self.batch_per_process * 2, self.workers
            )

    def build_loss(self, model: DetectionModel) -> DetectionLoss:
        """The loss --loss names (default: the head's own), with this run's hyperparameters."""
        return build_loss(model, self.hyp, imgsz=self.options.imgsz, name=self.options.loss)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """SGD/Adam/AdamW without decay on norms and biases; decay scaled to the nominal batch size."""
        o = self.options
        self.accumulate = max(round(o.nbs / o.batch_size), 1)
        hyp = self.hyp.optimizer
        weight_decay = hyp.weight_decay * o.batch_size * self.accumulate / o.nbs
        return build_optimizer(model, o.optimizer, hyp.lr0, hyp.momentum, weight_decay)

    def _restore_training_state(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_fitness = float(ckpt.get("best_fitness", -1.0))
        self.best_epoch = int(ckpt.get("best_epoch", ckpt["epoch"]))
        self.epoch = int(ckpt["epoch"])
        self.training_done = checkpoint_training_done(ckpt)

    # ------------------------------------------------------------------ loop
    def train(self) -> Path:
        """Run all epochs; returns the run directory (weights in `weights/`)."""
        try:
            self.setup()
        except BaseException:
            if self.run_dir is not None:  # a run that fails to start leaves no empty directory behind
                self.run_dir.release_if_empty()
            raise
        o = self.options
        self.num_batches = len(self.train_loader)
        self.fire("before_train")
        LOGGER.info(
            f"Image sizes {o.imgsz} train, {o.imgsz} val; {self.workers} dataloader workers; "
            f"logging to {self.save_dir}; starting training for {o.epochs} epochs..."
        )
        started = time.time()
        if not self.training_done:
            for epoch in range(self.start_epoch, o.epochs):
                self.epoch = epoch
                self.run_epoch()
                self.fire("after_epoch")
                self.stop_requested = dist_utils.broadcast_flag(self.stop_requested)  # rank 0 decides for all
                if self.stop_requested:
                    break
            hours = (time.time() - started) / 3600
            LOGGER.info(f"\n{self.epoch - self.start_epoch + 1} epochs completed in {hours:.3f} hours.")
        self.fire("after_train")
        dist_utils.cleanup_distributed()
        return self.save_dir

    def run_epoch(self) -> None:
        """One pass over the training data; sets train_losses (the epoch's means) and lrs (its rates)."""
        self.model.train()
        self.train_loader.set_epoch(self.epoch)
        self.fire("before_epoch")
        self.mean_losses = torch.zeros(len(self.loss_names), device=self.device)
        self._batches_in_mean = 0
        self.optimizer.zero_grad()
        self._last_optimizer_step = -1
        self._backward_since_step = False
        for i, batch in enumerate(self.train_loader):
            self.batch_index, self.iteration = i, i + self.num_batches * self.epoch
            self.fire("before_step")
            self.run_step(batch)
            self.fire("after_step")
        # an epoch whose every batch was skipped (non-finite loss) has no mean: NaN says so in results.csv
        kept = self._batches_in_mean > 0
        self.train_losses = self.mean_losses.tolist() if kept else [float("nan")] * len(self.mean_losses)
        self.lrs = [group["lr"] for group in self.optimizer.param_groups]  # read before the scheduler steps

    def run_step(self, batch: tuple) -> None:
        """Forward, loss, backward; an optimiser step every `accumulate` batches and at the epoch's end (so a
        resumed run starts with no gradients pending).

        A hook may skip the batch in before_backward (trainer.skip_batch, e.g. a NaN loss): no backward, not in
        the mean losses, and no optimiser step when no batch since the last one had a backward pass. A hook may
        also add to trainer.loss (e.g. distillation, from trainer.preds: the model's raw outputs of this batch)."""
        images, targets, self.paths, _ = batch
        self.images, self.targets = self.preprocess(images), targets
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            self.preds = self.model(self.images)
            loss, self.loss_items = self.loss_fn(self.preds, targets.to(self.device))
            if self.ddp:
                loss = loss * self.world_size  # DDP averages gradients over processes
        self.loss = loss
        self.skip_batch = False
        self.fire("before_backward")
        if not self.skip_batch:
            self.scaler.scale(self.loss).backward()
            self._backward_since_step = True
        i = self.batch_index
        if i - self._last_optimizer_step >= self.accumulate or i + 1 == self.num_batches:
            if self._backward_since_step:
                self.optimizer_step()
            self._last_optimizer_step = i
            self._backward_since_step = False
        if not self.skip_batch:
            n = self._batches_in_mean
            self.mean_losses = (self.mean_losses * n + self.loss_items.to(self.device)) / (n + 1)
            self._batches_in_mean = n + 1

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 batch -> float in [0, 1] on the device, in the training memory format; --multi-scale resizes it
        to a size that depends only on (seed, epoch, batch), so a resumed run draws the same sizes."""
        images = (images.to(self.device, non_blocking=True).float() / 255).contiguous(memory_format=self.memory_format)
        if self.options.multi_scale:
            stride = int(unwrap_model(self.model).stride.max())
            seed = (self.options.seed, self.epoch, self.batch_index)
            images = random_rescale_batch(images, self.options.imgsz, stride, seed=seed)
        return images

    def optimizer_step(self) -> None:
        """Unscale (AMP), clip, step, zero the gradients; hooks see the gradients before and the weights after."""
        self.scaler.unscale_(self.optimizer)
        self.fire("before_optimizer_step")
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.options.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        self.fire("after_optimizer_step")


def train(
    options: TrainOptions,
    hooks: Sequence[Hook] | None = None,
    callbacks: Mapping[str, Sequence[Callback]] | None = None,
) -> Path:
    """Train a detector; returns the run directory."""
    return Trainer(options, hooks, callbacks).train()
