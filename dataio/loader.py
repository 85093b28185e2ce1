"""Data loaders whose batch order is a function of (seed, epoch) only, for single-process and DDP training."""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from dataio.dataset import ItemKey
from utils.logging import LOGGER


class SeededSampler(Sampler[int]):
    """All indices, shuffled by a permutation seeded with seed + epoch (or in order when shuffle is False).

    The same contract as DistributedSampler on one process: call `set_epoch` before each epoch.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0) -> None:
        self.length, self.shuffle, self.seed, self.epoch = len(dataset), shuffle, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.length))
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class ItemKeySampler(Sampler[ItemKey]):
    """The indices of `indices` (a SeededSampler or DistributedSampler) as the dataset's `item_keys`: each carries
    the epoch and mosaic state of the main process's dataset when the epoch's iteration starts.

    The sampler runs in the main process, so this is how state set between epochs (`set_epoch`, `close_mosaic`)
    reaches workers that persist across epochs with their own copy of the dataset.
    """

    def __init__(self, indices: Sampler[int], dataset: Dataset) -> None:
        self.indices, self.dataset = indices, dataset

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.indices, "set_epoch"):
            self.indices.set_epoch(epoch)

    def __iter__(self) -> Iterator[ItemKey]:
        return self.dataset.item_keys(iter(self.indices))

    def __len__(self) -> int:
        return len(self.indices)


class YoloDataLoader(DataLoader):
    """A DataLoader with `set_epoch(epoch)`, which sets the epoch of its sampler and of its dataset."""

    def set_epoch(self, epoch: int) -> None:
        """Call before iterating each epoch: selects the shuffle order and the augmentations drawn."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def _worker_init(worker_id: int) -> None:
    # OpenCV's own thread pool in every worker would oversubscribe the cores the workers already use.
    cv2.setNumThreads(0)


def build_dataloader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 0,
    shuffle: bool = True,
    rank: int = -1,
    world_size: int = 1,
    seed: int = 0,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    persistent_workers: bool = True,
) -> YoloDataLoader:
    """A loader over `dataset` with a deterministic per-epoch order; call `loader.set_epoch(e)` each epoch.

    `rank >= 0` uses a DistributedSampler (each rank gets its share; `batch_size` is per rank). `workers`
    is capped by the CPU count; 0 loads in the main process. Workers start once and persist across epochs
    (re-forking a large training process every epoch cost seconds); a dataset with `item_keys` (YoloDataset)
    gets its per-epoch state with every index (`ItemKeySampler`), so its items are the same with any number of
    workers. `persistent_workers=False` starts them anew each epoch (for comparison).
    A rect dataset keeps its order (shuffling would mix its per-batch shapes).
    """
    if getattr(dataset, "rect", False) and shuffle:
        LOGGER.warning("rect=True dataset: shuffle disabled (batches are grouped by aspect ratio)")
        shuffle = False
    if rank >= 0:
        sampler: Sampler[int] = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    else:
        sampler = SeededSampler(dataset, shuffle=shuffle, seed=seed)
    if hasattr(dataset, "item_keys"):
        sampler = ItemKeySampler(sampler, dataset)
    workers = max(0, min(int(workers), os.cpu_count() or 1, max(1, len(dataset) // max(1, batch_size))))
    generator = torch.Generator()
    generator.manual_seed(seed)  # fixes the workers' base seed too (unused by our augmentation, but tidy)
    return YoloDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=getattr(dataset, "collate_fn", None),
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        worker_init_fn=_worker_init if workers else None,
        generator=generator,
        persistent_workers=persistent_workers and workers > 0,
    )
