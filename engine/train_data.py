"""The training run's data: an augmented, sharded training loader and the validation loader (rank 0 only)."""

from __future__ import annotations

from typing import Any

from dataio.augmentation_hyp import AugmentationHyp
from dataio.data_config import DataConfig
from dataio.dataset import YoloDataset
from dataio.loader import build_dataloader
from dataio.sources import list_images
from engine.train_options import TrainOptions
from engine.val_data import validation_dataset
from utils import distributed as dist_utils


def cache_images(options: TrainOptions, source: Any) -> bool | str:
    """What YoloDataset's `cache_images` gets for --cache: "ram", "disk", False (none), or for auto "ram" when the
    split's resized images need under 1 GB."""
    if options.cache != "auto":
        return options.cache if options.cache in ("ram", "disk") else False
    return "ram" if len(list_images(source)) * options.imgsz**2 * 3 < 1e9 else False


def training_loader(
    options: TrainOptions,
    data: DataConfig,
    augmentation: AugmentationHyp,
    stride: int,
    batch_per_process: int,
    workers: int,
    rank: int,
    world_size: int,
) -> tuple[YoloDataset, Any]:
    """The augmented training set (rank 0 builds the label cache first) and its per-epoch deterministic loader."""
    with dist_utils.main_process_first():
        dataset = YoloDataset(
            data.train,
            imgsz=options.imgsz,
            augment=True,
            hyp=augmentation,
            rect=options.rect,
            stride=stride,
            batch_size=batch_per_process,
            single_cls=options.single_cls,
            nc=data.nc,  # the data's classes; --single-cls merges them after
            seed=options.seed,
            prefix="train: ",
            cache_images=cache_images(options, data.train),
        )
    loader = build_dataloader(
        dataset,
        batch_per_process,
        workers=workers,
        shuffle=not options.rect,
        rank=rank,
        world_size=world_size,
        seed=options.seed,
    )
    return dataset, loader


def validation_loader(
    options: TrainOptions, data: DataConfig, stride: int, batch_size: int, workers: int
) -> tuple[YoloDataset, Any]:
    """The validation set, letterboxed as val.py does (so it repeats these figures), and its loader."""
    dataset = validation_dataset(
        data.val,
        options.imgsz,
        stride,
        batch_size,
        single_cls=options.single_cls,
        nc=data.nc,  # the data's classes; --single-cls merges them after
        seed=options.seed,
        cache_images=cache_images(options, data.val),
    )
    return dataset, build_dataloader(dataset, batch_size, workers=workers, shuffle=False)
