"""Training options: one dataclass shared by train.py's argument parser, the Python API and checkpoints."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.optim import OPTIMIZERS


@dataclass
class TrainOptions:
    """Everything a training run depends on (saved in checkpoints as `train_args`, so --resume restores it)."""

    cfg: str = "yolov5s_mobileone.yaml"  # model YAML: a name under cfg/ or a path
    data: str = "trees.yaml"  # dataset YAML: a name under data/ or a path
    hyp: str | None = None  # hyperparameter YAML; default by head family (data/hyps/hyp.scratch-*.yaml)
    weights: str | None = None  # initial weights: a checkpoint whose matching tensors are transferred
    backbone_weights: str | None = None  # a local timm/official checkpoint for the backbone stage
    scale: str | None = None  # scale letter for configs with `scales` (else from the name)
    epochs: int = 20  # the README main command (yolov5s_mobileone on trees) then ends within 30 min on 2 CPU cores
    batch_size: int = 16  # total over all processes
    imgsz: int = 416
    optimizer: str = "SGD"
    cos_lr: bool = False
    label_smoothing: float = 0.0
    patience: int = 50  # epochs without fitness improvement before stopping
    freeze: str | None = None  # "backbone" or a layer count N (layers 0..N-1)
    close_mosaic: int = 10  # turn mosaic off for the last N epochs
    multi_scale: bool = False
    rect: bool = False  # rectangular training batches (no mosaic)
    single_cls: bool = False
    sync_bn: bool = False
    workers: int | None = None  # data loader workers per process; None: 0 on CPU, min(8, cores) on CUDA
    cache: str = "auto"  # keep decoded, resized images in RAM: auto (when under 1 GB), ram, none
    device: str = ""  # "", "cpu", "0", "0,1", "cuda:0"
    project: str = "runs/train"
    name: str = "exp"
    exist_ok: bool = False
    resume: str | bool = False  # True: the newest runs/train/*/weights/last.pt; or a path
    seed: int = 0
    deterministic: bool = True
    save_period: int = -1  # also save epochN.pt every N epochs (-1: off)
    noval: bool = False  # validate only after the last epoch
    noplots: bool = False
    max_grad_norm: float = 10.0
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    channels_last: bool = True  # NHWC tensors: 10-35% faster training steps on CPU (benchmarks/results/)
    # The next three differ from the references (64, 0.03, 100): on small data sets those leave a run with a
    # handful of optimiser steps per epoch, BatchNorm statistics that lag the weights and a warm-up longer than
    # a third of the run. Measured on the bundled trees data: benchmarks/results/trees.md.
    nbs: int = 16  # nominal batch size: gradients accumulate to it, weight decay scales with it
    bn_momentum: float | None = 0.1  # BatchNorm running-stat momentum in training; None keeps the model's 0.03
    min_warmup_iters: int = 0  # warm-up lasts max(warmup_epochs x batches per epoch, this)
    val_iou_thres: float | None = None  # NMS IoU in validation (default 0.6 anchor / 0.7 DFL head)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The train.py command line, generated from TrainOptions defaults so the two never disagree."""
    defaults = TrainOptions()
    p = parser
    p.add_argument("--cfg", default=defaults.cfg, help="model YAML name under cfg/ or a path")
    p.add_argument("--data", default=defaults.data, help="dataset YAML name under data/ or a path")
    p.add_argument("--hyp", default=None, help="hyperparameter YAML (default: by head family)")
    p.add_argument("--weights", default=None, help="initial weights (a checkpoint of this project)")
    p.add_argument("--backbone-weights", default=None, help="local checkpoint for the backbone (timm/official)")
    p.add_argument("--scale", default=None, help="scale letter n/s/m/l/x for scaled configs")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="total batch size over all processes")
    p.add_argument("--imgsz", "--img", type=int, default=defaults.imgsz, help="train and val image size (pixels)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    p.add_argument("--cos-lr", action="store_true", help="cosine learning-rate decay (default linear)")
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--patience", type=int, default=defaults.patience, help="early-stopping patience in epochs")
    p.add_argument("--freeze", default=None, help="'backbone' or N to freeze layers 0..N-1")
    p.add_argument("--close-mosaic", type=int, default=defaults.close_mosaic, help="no mosaic in the last N epochs")
    p.add_argument("--multi-scale", action="store_true", help="vary the image size +/-50%% per batch")
    p.add_argument("--rect", action="store_true", help="rectangular training batches")
    p.add_argument("--single-cls", action="store_true", help="train all classes as one")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    p.add_argument(
        "--cache",
        choices=("auto", "ram", "none"),
        default=defaults.cache,
        help="keep resized images in RAM (auto: when the split needs under 1 GB)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="data loader workers per process (default: 0 on CPU, where re-forking a large training process "
        "each epoch costs more than loading cached images in-process; min(8, cores) on CUDA)",
    )
    p.add_argument("--device", default=defaults.device, help="cpu, 0, 0,1 or cuda:0 (default: CUDA if available)")
    p.add_argument("--project", default=defaults.project)
    p.add_argument("--name", default=defaults.name)
    p.add_argument("--exist-ok", action="store_true", help="reuse project/name instead of incrementing")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume the newest run, or the given last.pt")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--save-period", type=int, default=defaults.save_period)
    p.add_argument("--noval", action="store_true", help="validate only after the final epoch")
    p.add_argument("--noplots", action="store_true")
    p.add_argument(
        "--nbs",
        type=int,
        default=defaults.nbs,
        help="nominal batch size: gradients accumulate to it (the references use 64)",
    )
    p.add_argument(
        "--min-warmup-iters",
        type=int,
        default=defaults.min_warmup_iters,
        help="warm-up lasts at least this many iterations (the references use 100)",
    )
    p.add_argument(
        "--bn-momentum",
        type=float,
        default=defaults.bn_momentum,
        help="BatchNorm momentum in training (the references use 0.03, which lags on short runs)",
    )
    p.add_argument("--val-iou-thres", type=float, default=None, help="NMS IoU threshold for validation")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision on CUDA")
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep NCHW memory layout (channels-last is faster on CPU and on tensor-core GPUs)",
    )
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions.from_dict(vars(args))
