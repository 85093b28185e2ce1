"""The training loop: data, model, loss, optimiser, EMA, validation each epoch, checkpoints, resume, DDP."""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from engine.ema import ModelEMA
from engine.optim import build_optimizer, lr_lambda, warmup_values
from engine.results_log import ResultsLog
from engine.train_options import TrainOptions
from engine.validator import validate
from models.detection_model import DetectionModel
from utils import distributed as dist_utils
from utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, unwrap_model, write_checkpoint_file
from utils.files import increment_path, load_yaml, newest_weights
from utils.logging import LOGGER, set_verbosity
from utils.torch_utils import init_seeds, select_device

HYP_DIR = Path(__file__).resolve().parent.parent / "data" / "hyps"
Callback = Callable[["Trainer"], None]


class TrainingError(ValueError):
    """A training run that cannot start or continue (bad options, nothing to resume, ...)."""


def default_hyp_path(model: DetectionModel) -> Path:
    """The head's own hyperparameters (anchor-based and DFL losses use different gains)."""
    return HYP_DIR / model.head.hyp_file


def load_hyp(path: str | Path) -> dict[str, Any]:
    """A hyperparameter YAML by path, or by name from data/hyps/."""
    path = Path(path)
    if not path.is_file() and (HYP_DIR / path.name).is_file():
        path = HYP_DIR / path.name
    if not path.is_file():
        raise TrainingError(f"--hyp {path}: file not found")
    hyp = load_yaml(path, TrainingError)
    if not isinstance(hyp, dict):
        raise TrainingError(f"--hyp {path}: expected a mapping of hyperparameters")
    return hyp


class Trainer:
    """Runs one training job described by TrainOptions. `train()` returns the run directory.

    Callbacks (`on_train_start`, `on_epoch_end`, `on_train_end`) receive the trainer; tests use them to
    interrupt a run, and they are the place for loggers.
    """

    def __init__(self, options: TrainOptions, callbacks: dict[str, list[Callback]] | None = None) -> None:
        self.callbacks: dict[str, list[Callback]] = defaultdict(list, callbacks or {})
        self.resume_checkpoint: dict[str, Any] | None = None
        if options.resume:
            options, self.resume_checkpoint = self._load_resume(options)
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

        if self.resume_checkpoint is not None:
            self.save_dir = Path(self.resume_checkpoint["_save_dir"])
        else:
            # created by rank 0 once setup succeeds, so a run that fails to start leaves no empty directory
            self.save_dir = increment_path(Path(options.project) / options.name, options.exist_ok, mkdir=False)
        self.weights_dir = self.save_dir / "weights"
        self.epoch = 0
        self.start_epoch = 0
        self.best_fitness = -1.0
        self.best_epoch = 0
        self.stop_requested = False
        self.metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
    def _load_resume(self, options: TrainOptions) -> tuple[TrainOptions, dict[str, Any]]:
        if options.resume is True:
            path = newest_weights(options.project, "*/weights/last.pt")
            if path is None:
                raise TrainingError(f"--resume: no {options.project}/*/weights/last.pt to resume; start a run first")
        else:
            path = Path(str(options.resume))
        ckpt = _load_named(path, "--resume")
        if ckpt.get("optimizer") is None or "train_args" not in ckpt:
            raise TrainingError(f"--resume {path}: this checkpoint has no training state (a finished run?)")
        restored = TrainOptions.from_dict(ckpt["train_args"])
        restored.resume = str(path)
        restored.device, restored.workers = options.device or restored.device, options.workers
        ckpt["_save_dir"] = str(path.parent.parent)
        LOGGER.info(f"Resuming {path} from epoch {ckpt['epoch'] + 2}/{restored.epochs}")
        return restored, ckpt

    def _build_data(self, model: DetectionModel) -> None:
        from dataio.dataset import YoloDataset
        from dataio.loader import build_dataloader
        from engine.val_data import validation_dataset

        o = self.options
        self.workers = resolve_workers(o.workers, self.device)
        self.batch_per_process = max(o.batch_size // self.world_size, 1)
        stride = int(model.stride.max())
        with dist_utils.main_process_first():
            self.train_set = YoloDataset(
                self.data.train,
                imgsz=o.imgsz,
                augment=True,
                hyp=self.hyp,
                rect=o.rect,
                stride=stride,
                batch_size=self.batch_per_process,
                single_cls=o.single_cls,
                nc=self.data.nc,  # the data's classes; --single-cls merges them after
                seed=o.seed,
                prefix="train: ",
                cache_images=self._cache_images(self.data.train),
            )
        self.train_loader = build_dataloader(
            self.train_set,
            self.batch_per_process,
            workers=self.workers,
            shuffle=not o.rect,
            rank=self.rank,
            world_size=self.world_size,
            seed=o.seed,
        )
        self.val_loader = None
        if self.is_main:
            self.val_set = validation_dataset(  # letterboxed as val.py does, so it repeats these figures
                self.data.val,
                o.imgsz,
                stride,
                self.batch_per_process * 2,
                single_cls=o.single_cls,
                nc=self.data.nc,  # the data's classes; --single-cls merges them after
                seed=o.seed,
                cache_images=self._cache_images(self.data.val),
            )
            self.val_loader = build_dataloader(
                self.val_set, self.batch_per_process * 2, workers=self.workers, shuffle=False
            )

    def _cache_images(self, source: Any) -> bool:
        """--cache ram/none, or auto: keep resized images in RAM when the split needs under 1 GB for it."""
        if self.options.cache != "auto":
            return self.options.cache == "ram"
        from dataio.sources import list_images

        return len(list_images(source)) * self.options.imgsz**2 * 3 < 1e9

    def _build_model(self) -> DetectionModel:
        o = self.options
        if self.resume_checkpoint is not None:
            model = DetectionModel(
                self.resume_checkpoint["model_yaml"], in_channels=self.resume_checkpoint["in_channels"]
            )
            model.load_state_dict(self.resume_checkpoint["model"])
            return model
        model = DetectionModel(o.cfg, nc=1 if o.single_cls else self.data.nc, scale=o.scale)
        model.names = {0: "item"} if o.single_cls else dict(self.data.names)
        if o.weights:
            self._transfer_weights(model, o.weights)
        if o.backbone_weights:
            from models.backbones.weights import load_backbone_weights

            load_backbone_weights(model, o.backbone_weights)
        return model

    @staticmethod
    def _transfer_weights(model: nn.Module, path: str) -> None:
        ckpt = _load_named(path, "--weights")
        source = ckpt.get("ema") or ckpt["model"]
        target = model.state_dict()
        matched = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
        if not matched:
            raise TrainingError(f"--weights {path}: no tensor matches this model")
        model.load_state_dict(matched, strict=False)
        LOGGER.info(f"Transferred {len(matched)}/{len(target)} tensors from {path}")

    def _freeze(self, model: DetectionModel) -> None:
        spec = self.options.freeze
        if not spec:
            return
        if spec == "backbone":
            limit = len(model.yaml.get("backbone", []))
            frozen_rows = range(limit)
        else:
            try:
                limit = int(spec)
            except ValueError:
                raise TrainingError(f"--freeze {spec!r}: use 'backbone' or a layer count") from None
            frozen_rows = [i for i, r in enumerate(model.records) if r.first_slot < limit]
        for row in frozen_rows:
            model.model[row].requires_grad_(False)
        LOGGER.info(f"Frozen {len(list(frozen_rows))} layers ({spec})")

    def setup(self) -> None:
        """Build everything a run needs; separate from __init__ so failures surface with clear messages."""
        from dataio.data_config import load_data_config

        o = self.options
        self.data = load_data_config(o.data)
        model = self._build_model()
        self.hyp = load_hyp(o.hyp) if o.hyp else load_hyp(default_hyp_path(model))
        if o.label_smoothing:
            self.hyp["label_smoothing"] = o.label_smoothing
        self._build_data(model)
        if self.resume_checkpoint is None:
            model.head.prepare_training(self.train_set, self.hyp, o.imgsz, o.seed)  # e.g. AutoAnchor
        self._freeze(model)
        if o.bn_momentum is not None:
            set_batchnorm_momentum(model, o.bn_momentum)
        model.to(self.device)
        self.memory_format = torch.channels_last if o.channels_last else torch.contiguous_format
        model.to(memory_format=self.memory_format)

        from losses import build_loss

        self.loss_fn = build_loss(model, self.hyp, imgsz=o.imgsz)
        self.ema = ModelEMA(model) if self.is_main else None
        self.accumulate = max(round(o.nbs / o.batch_size), 1)
        weight_decay = self.hyp["weight_decay"] * o.batch_size * self.accumulate / o.nbs
        self.optimizer = build_optimizer(model, o.optimizer, self.hyp["lr0"], self.hyp["momentum"], weight_decay)
        self.lr_fn = lr_lambda(o.epochs, self.hyp["lrf"], o.cos_lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lr_fn)
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
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_files()

    def _restore_training_state(self, ckpt: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.ema.load_state_dict(ckpt["ema"])
            self.ema.updates = int(ckpt.get("ema_updates", 0))
        self.start_epoch = int(ckpt["epoch"]) + 1
        self.best_fitness = float(ckpt.get("best_fitness", -1.0))
        self.best_epoch = int(ckpt.get("best_epoch", ckpt["epoch"]))
        self.scheduler.last_epoch = self.start_epoch - 1
        if self.start_epoch >= self.options.epochs:
            raise TrainingError(
                f"{self.options.resume} already finished {self.options.epochs} epochs; nothing to resume"
            )

    def _write_run_files(self) -> None:
        with open(self.save_dir / "args.yaml", "w") as f:
            yaml.safe_dump(self.options.to_dict(), f, sort_keys=False)
        with open(self.save_dir / "hyp.yaml", "w") as f:
            yaml.safe_dump(self.hyp, f, sort_keys=False)

    # ------------------------------------------------------------------ loop
    def train(self) -> Path:
        """Run all epochs; returns the run directory (weights in `weights/`)."""
        self.setup()
        o = self.options
        loss_names = list(self.loss_fn.names)
        self.results = ResultsLog(
            self.save_dir / "results.csv",
            [
                *(f"train/{n}_loss" for n in loss_names),
                "metrics/precision",
                "metrics/recall",
                "metrics/mAP50",
                "metrics/mAP50-95",
                *(f"val/{n}_loss" for n in loss_names),
                "lr/pg0",
                "lr/pg1",
                "lr/pg2",
            ],
        )
        if self.is_main:
            self.results.truncate_after(self.start_epoch - 1)
            if self.start_epoch == 0 and not o.noplots:
                self._plot_labels()
        self._run_callbacks("on_train_start")
        nb = len(self.train_loader)
        self.warmup_iters = (
            max(round(self.hyp["warmup_epochs"] * nb), o.min_warmup_iters) if self.hyp["warmup_epochs"] > 0 else -1
        )
        LOGGER.info(
            f"Image sizes {o.imgsz} train, {o.imgsz} val; {self.workers} dataloader workers; "
            f"logging to {self.save_dir}; starting training for {o.epochs} epochs..."
        )
        started = time.time()
        for epoch in range(self.start_epoch, o.epochs):
            self.epoch = epoch
            train_losses = self._train_one_epoch(epoch, nb)
            # The rates this epoch trained with (its last warm-up values), logged as the references log them.
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            self.scheduler.step()
            if self.is_main:
                final_epoch = epoch + 1 == o.epochs
                self.metrics, val_losses = self._validate(final_epoch)
                fitness = self.metrics.get("fitness", 0.0)
                improved = fitness > self.best_fitness
                if improved:
                    self.best_fitness, self.best_epoch = fitness, epoch
                self.results.append(
                    epoch,
                    [
                        *train_losses,
                        self.metrics.get("precision", 0),
                        self.metrics.get("recall", 0),
                        self.metrics.get("map50", 0),
                        self.metrics.get("map50_95", 0),
                        *val_losses,
                        *lrs,
                    ],
                )
                self._save(epoch, improved)
                self.stop_requested = self._should_stop(epoch)
            self.stop_requested = dist_utils.broadcast_flag(self.stop_requested)
            self._run_callbacks("on_epoch_end")
            if self.stop_requested:
                LOGGER.info(f"Stopping early: no improvement in {o.patience} epochs (best epoch {self.best_epoch + 1})")
                break
        if self.is_main:
            self._finish(time.time() - started)
        self._run_callbacks("on_train_end")
        dist_utils.cleanup_distributed()
        return self.save_dir

    def _train_one_epoch(self, epoch: int, nb: int) -> list[float]:
        o = self.options
        model = self.model
        model.train()
        self.train_loader.set_epoch(epoch)
        if o.close_mosaic > 0 and epoch >= o.epochs - o.close_mosaic:  # state: re-applied after a resume
            self.train_set.close_mosaic()
        mean_losses = torch.zeros(len(self.loss_fn.names), device=self.device)
        self.optimizer.zero_grad()
        last_step = -1
        header = ("Epoch", "mem", *self.loss_fn.names, "Instances", "Size")
        LOGGER.info(("\n" + "%11s" * len(header)) % header)
        progress = tqdm(
            enumerate(self.train_loader), total=nb, disable=not self.is_main, bar_format="{l_bar}{bar:10}{r_bar}"
        )
        for i, (images, targets, paths, _) in progress:
            iteration = i + nb * epoch
            images = (images.to(self.device, non_blocking=True).float() / 255).contiguous(
                memory_format=self.memory_format
            )
            self._warmup(iteration, epoch)
            if o.multi_scale:
                images = self._rescale_batch(images, epoch, i)
            with torch.autocast(device_type=self.device.type, enabled=self.amp):
                raw = model(images)
                loss, items = self.loss_fn(raw, targets.to(self.device))
                if self.ddp:
                    loss = loss * self.world_size  # DDP averages gradients over processes
            self.scaler.scale(loss).backward()
            if i - last_step >= self.accumulate or i + 1 == nb:  # flush at epoch end so a resume starts clean
                self._optimizer_step()
                last_step = i
            mean_losses = (mean_losses * i + items.to(self.device)) / (i + 1)
            if self.is_main:
                progress.set_description(
                    ("%11s" * 2 + "%11.4g" * (len(mean_losses) + 2))
                    % (
                        f"{epoch + 1}/{o.epochs}",
                        _memory_text(self.device),
                        *mean_losses.tolist(),
                        targets.shape[0],
                        images.shape[-1],
                    )
                )
                if epoch == 0 and i < 3 and not o.noplots:
                    self._plot_batch(images, targets, paths, self.save_dir / f"train_batch{i}.jpg")
        return mean_losses.tolist()

    def _warmup(self, iteration: int, epoch: int) -> None:
        if iteration > self.warmup_iters:
            return
        epoch_lr = self.hyp["lr0"] * self.lr_fn(epoch)
        rates, momentum = warmup_values(iteration, self.warmup_iters, epoch_lr, self.hyp)
        self.accumulate = max(
            1, round(np.interp(iteration, [0, self.warmup_iters], [1, self.options.nbs / self.options.batch_size]))
        )
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
            if "momentum" in group:
                group["momentum"] = momentum
            elif "betas" in group:
                group["betas"] = (momentum, group["betas"][1])

    def _optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.options.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        if self.ema is not None:
            self.ema.update(self.model)

    def _rescale_batch(self, images: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        """Multi-scale training: the size depends only on (seed, epoch, batch), so resume stays exact."""
        from dataio.multiscale import random_rescale_batch

        stride = int(unwrap_model(self.model).stride.max())
        return random_rescale_batch(images, self.options.imgsz, stride, seed=(self.options.seed, epoch, index))

    # ------------------------------------------------------------------ validation, saving
    def _validate(self, final_epoch: bool) -> tuple[dict[str, float], list[float]]:
        if self.options.noval and not final_epoch:
            return {}, [0.0] * len(self.loss_fn.names)
        result = validate(
            self.ema.ema,
            self.val_loader,
            names=unwrap_model(self.model).names,
            device=self.device,
            iou_thres=self._val_iou(),
            loss_fn=self.loss_fn,
            half=self.amp,
            plots=False,
            save_dir=self.save_dir,
            single_cls=self.options.single_cls,
        )
        return result.metrics, result.losses

    def _val_iou(self) -> float:
        if self.options.val_iou_thres is not None:
            return self.options.val_iou_thres
        return unwrap_model(self.model).head.val_iou

    def _checkpoint_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "ema": {k: v.detach().clone() for k, v in self.ema.ema.state_dict().items()},
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "train_args": self.options.to_dict(),
            "hyp": self.hyp,
            "metrics": self.metrics,
        }

    def _save(self, epoch: int, improved: bool) -> None:
        state = self._checkpoint_state(epoch)
        save_checkpoint(self.weights_dir / "last.pt", self.model, **state)
        if improved:
            save_checkpoint(self.weights_dir / "best.pt", self.model, **state)
        period = self.options.save_period
        if period > 0 and (epoch + 1) % period == 0:
            save_checkpoint(self.weights_dir / f"epoch{epoch + 1}.pt", self.model, **state)

    def _should_stop(self, epoch: int) -> bool:
        return self.options.patience > 0 and epoch - self.best_epoch >= self.options.patience

    def _finish(self, seconds: float) -> None:
        o = self.options
        LOGGER.info(f"\n{self.epoch - self.start_epoch + 1} epochs completed in {seconds / 3600:.3f} hours.")
        best = self.weights_dir / "best.pt"
        for path in (self.weights_dir / "last.pt", best):
            if path.exists():
                strip_optimizer(path)
        if best.exists():
            from utils.checkpoint import model_from_checkpoint

            LOGGER.info(f"\nValidating {best}...")
            model = model_from_checkpoint(best).to(self.device)
            result = validate(
                model,
                self.val_loader,
                names=model.names,
                device=self.device,
                iou_thres=self._val_iou(),
                plots=not o.noplots,
                save_dir=self.save_dir,
                single_cls=o.single_cls,
                verbose=True,
            )
            self.metrics = result.metrics
        if not o.noplots:
            from utils.plots import plot_results

            plot_results(self.save_dir / "results.csv")
        LOGGER.info(
            f"Results saved to {self.save_dir}\n"
            f"Weights: {best if best.exists() else self.weights_dir / 'last.pt'}\n"
            f"Next:\n"
            f"  python val.py --weights {best} --data {o.data}\n"
            f"  python detect.py --weights {best} --source {(self.data.val or self.data.train)[0]}\n"
            f"  python export.py --weights {best} --include onnx"
        )

    def _plot_labels(self) -> None:
        from utils.plots import plot_labels

        labelled = [image_labels for image_labels in self.train_set.labels if len(image_labels)]
        if labelled:
            plot_labels(np.concatenate(labelled), unwrap_model(self.model).names, self.save_dir / "labels.jpg")

    def _plot_batch(self, images: torch.Tensor, targets: torch.Tensor, paths: list[str], out: Path) -> None:
        from utils.plots import plot_batch

        plot_batch((images * 255).byte().cpu(), targets.cpu(), paths, unwrap_model(self.model).names, out)

    def _run_callbacks(self, event: str) -> None:
        for callback in self.callbacks[event]:
            callback(self)


def resolve_workers(requested: int | None, device: torch.device) -> int:
    """Data loader workers: as requested, else 0 on CPU and min(8, cores) on CUDA.

    On CPU the training process itself grows to gigabytes; the loader forks its workers anew every epoch, and
    each fork makes the trainer copy-on-write fault through that memory: measured on the trees data, the first
    step of every epoch took 19 s instead of 6 s with 2 workers, while loading cached images in-process costs
    under a second per epoch.
    """
    if requested is not None:
        if requested < 0:
            raise TrainingError(f"--workers {requested}: must be >= 0")
        return requested
    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def set_batchnorm_momentum(model: nn.Module, momentum: float) -> None:
    """Running statistics follow the weights faster with a higher momentum. The references' 0.03 suits
    thousands of iterations; a run of a few hundred ends with statistics that lag its weights."""
    if not 0 < momentum <= 1:
        raise TrainingError(f"--bn-momentum {momentum}: must be in (0, 1]")
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def _load_named(path: str | Path, argument: str) -> dict[str, Any]:
    """load_checkpoint, with the command-line argument that named the file in its error."""
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise TrainingError(f"{argument} {e}") from None


def strip_optimizer(path: Path) -> None:
    """Finished run: keep the EMA weights as the model and drop optimiser state (a smaller, final file)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("ema") is not None:
        ckpt["model"] = ckpt["ema"]
    ckpt.update(ema=None, optimizer=None, ema_updates=None)
    write_checkpoint_file(path, ckpt)


def _memory_text(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.memory_reserved(device) / 1e9:.3g}G"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.3g}G"  # peak RSS (Linux reports kB)


def train(options: TrainOptions, callbacks: dict[str, list[Callback]] | None = None) -> Path:
    """Train a detector; returns the run directory."""
    return Trainer(options, callbacks).train()
