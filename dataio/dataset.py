"""The YOLO dataset: checked images and labels, loaded, augmented and letterboxed into network inputs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from dataio.augment import (
    augment_hsv,
    flip_lr,
    flip_ud,
    mixup,
    mosaic4,
    random_mosaic_centre,
    random_perspective,
)
from dataio.augmentation_hyp import AugmentationHyp
from dataio.disk_cache import build_disk_cache
from dataio.disk_cache import load_image as load_original
from dataio.image_io import ImageReadError
from dataio.label_checks import Problem
from dataio.rect import aspect_order, rect_batch_shapes
from dataio.scan import load_or_scan
from dataio.sources import DatasetSourceError, SplitSource, list_images
from utils.errors import OptionError
from utils.letterbox import PAD_COLOR, letterbox
from utils.logging import LOGGER

# (original (h0, w0), ((ratio_h, ratio_w), (pad_w, pad_h))), or None for a mosaic (no single original).
ShapeInfo = tuple[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]] | None


class ItemKey(NamedTuple):
    """An index with the per-epoch state its item is augmented with, as the loader's sampler asks for it.

    The state is read from the main process's dataset when an epoch's iteration starts and travels with every
    index, so loader workers that persist across epochs (each with its own copy of the dataset, taken when they
    started) draw exactly what the main process would.
    """

    index: int
    epoch: int
    mosaic_closed: bool


class YoloDataset(Dataset):
    """Images and YOLO labels of one split, checked once (see `dataio.label_checks`) and cached.

    An item is `(image, labels, path, shape_info)`: image a uint8 (3, H, W) RGB tensor; labels a float32
    (n, 6) tensor `0, cls, x, y, w, h` normalised to that image (column 0 is filled with the index in the
    batch by `collate_fn`); shape_info maps boxes back to the original image (None for mosaics).

    Attributes the trainer uses: `labels` (per image (n, 5) float32 `cls, x, y, w, h` normalised to the
    original image), `shapes` ((N, 2) int, original **(width, height)** after EXIF orientation),
    `image_files`, `label_files`, `problems` (every problem found by the checks), `counts`.

    An image that the scan accepted but that cannot be decoded any more (changed or removed since) is reported
    once, naming the file, and never stops the run: when augmenting (training) the next readable index takes
    its place (a function of the files only, so the same in every worker and after a resume); otherwise
    (evaluation) the item is None and `collate_fn` leaves it out, so it is not scored.

    Augmentation randomness comes from a generator seeded with (seed, epoch, index) only, so an item is the
    same whenever it is asked for with the same `set_epoch`, in any worker and after any resume. An item is
    asked for by a plain index (this dataset's epoch and mosaic state) or by an `ItemKey` (the key's state:
    what the loader's workers get, see `item_keys`).
    With `rect=True` images are reordered by aspect ratio and letterboxed per batch of `batch_size` to a
    stride-multiple shape: iterate in order (no shuffle) with the same batch size.

    `nc` is the class count of the data set (its YAML's `names`): labels are checked against it as written.
    `single_cls` merges every class into 0 after that check, so a multi-class data set trains and validates
    as one class while a class id the data set does not have is still reported.
    """

    def __init__(
        self,
        source: SplitSource,
        imgsz: int = 640,
        augment: bool = False,
        hyp: AugmentationHyp | Mapping[str, Any] | None = None,
        rect: bool = False,
        stride: int = 32,
        batch_size: int = 16,
        pad: float = 0.0,
        single_cls: bool = False,
        nc: int | None = None,
        cache_dir: str | Path | None = None,
        cache_images: bool | str = False,
        seed: int = 0,
        prefix: str = "",
    ) -> None:
        if imgsz % stride:
            raise OptionError(f"--imgsz {imgsz} must be a multiple of stride={stride}")
        self.imgsz, self.stride, self.augment, self.rect = int(imgsz), int(stride), augment, rect
        self.batch_size, self.pad, self.seed, self.prefix = batch_size, pad, int(seed), prefix
        self.hyp = AugmentationHyp.read(hyp)
        self.epoch = 0
        self._mosaic_closed = False

        scan = load_or_scan(list_images(source), nc, cache_dir, prefix)
        if not scan.image_files:
            raise DatasetSourceError(
                f"{prefix}no usable images in {source}: all {scan.counts['found']} were "
                f"skipped (see the problems listed above)"
            )
        self.image_files: list[str] = scan.image_files
        self.label_files: list[str] = scan.label_files
        self.labels: list[np.ndarray] = [x.copy() for x in scan.labels]
        self.shapes: np.ndarray = scan.shapes
        self.problems: list[Problem] = scan.problems
        self.counts: dict[str, int] = scan.counts
        if single_cls:  # after the checks against the data set's own nc, never instead of them
            for x in self.labels:
                x[:, 0] = 0

        self.batch_index = self.batch_shapes = None
        if rect:
            order = aspect_order(self.shapes)
            self.image_files = [self.image_files[i] for i in order]
            self.label_files = [self.label_files[i] for i in order]
            self.labels = [self.labels[i] for i in order]
            self.shapes = self.shapes[order]
            self.batch_index, self.batch_shapes = rect_batch_shapes(self.shapes, batch_size, self.imgsz, stride, pad)

        self._images: list[np.ndarray | None] | None = None
        self._unreadable_reported: set[str] = set()
        # True or "ram": resized images in memory; "disk": decoded once into .npy files beside the images
        if cache_images == "disk":
            build_disk_cache(self.image_files, prefix)
        elif cache_images:
            self._cache_images()

    # -- the trainer's controls -------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations `__getitem__` draws (part of every item's seed)."""
        self.epoch = int(epoch)

    def close_mosaic(self) -> None:
        """Stop mosaic (and mixup, which blends mosaics) for the remaining epochs; other augmentations stay.

        State, not a function of the epoch: a trainer resuming inside the last N epochs calls it again.
        """
        if not self._mosaic_closed and self.mosaic_enabled:
            LOGGER.info(f"{self.prefix}closing mosaic (and mixup) for the last epochs")
        self._mosaic_closed = True

    @property
    def mosaic_enabled(self) -> bool:
        return self._mosaic_allowed(self._mosaic_closed)

    def _mosaic_allowed(self, mosaic_closed: bool) -> bool:
        return self.augment and not self.rect and not mosaic_closed and self.hyp.mosaic > 0

    def rng_for(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The generator of item `index` in `epoch` (default: the current epoch)."""
        return np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), int(index)])

    def item_keys(self, indices: Iterable[int]) -> Iterator[ItemKey]:
        """`indices` as keys carrying this dataset's epoch and mosaic state as they are now (read at once, not
        as the keys are drawn), for a sampler to hand to loader workers whatever state their copies hold."""
        epoch, mosaic_closed = self.epoch, self._mosaic_closed
        return (ItemKey(int(i), epoch, mosaic_closed) for i in indices)

    # -- items --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, key: int | ItemKey) -> tuple[torch.Tensor, torch.Tensor, str, ShapeInfo] | None:
        if isinstance(key, ItemKey):
            index, epoch, mosaic_closed = key
        else:
            index, epoch, mosaic_closed = int(key), self.epoch, self._mosaic_closed
        rng = self.rng_for(index, epoch)
        hyp = self.hyp
        shape_info: ShapeInfo = None
        # Draw the mosaic decision even when augmentation is off so the draw sequence does not depend on it.
        use_mosaic = rng.random() < hyp.mosaic and self._mosaic_allowed(mosaic_closed)
        if use_mosaic:
            image, labels = self._load_mosaic(index, rng)
            if rng.random() < hyp.mixup:
                image, labels = mixup(image, labels, *self._load_mosaic(int(rng.integers(len(self))), rng), rng)
        else:
            shape = tuple(self.batch_shapes[self.batch_index[index]]) if self.rect else (self.imgsz, self.imgsz)
            if self.augment:
                index, (image, (h0, w0), (h, w)) = self.load_readable(index)
            else:
                try:
                    image, (h0, w0), (h, w) = self.load_image(index)
                except ImageReadError as e:
                    self._report_unreadable(e)
                    return None  # evaluation leaves it out (collate_fn) rather than scoring another image twice
            image, ratio, (pad_w, pad_h) = letterbox(image, shape, auto=False, scale_up=self.augment)
            content_w, content_h = round(w * ratio), round(h * ratio)
            labels = self._pixel_labels(index, content_w, content_h, pad_w, pad_h)
            shape_info = ((h0, w0), ((content_h / h0, content_w / w0), (pad_w, pad_h)))
            if self.augment:
                image, labels = self._random_perspective(image, labels, rng)
        if self.augment:
            image = augment_hsv(image, rng, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v)
            if rng.random() < hyp.flipud:
                image, labels = flip_ud(image, labels)
            if rng.random() < hyp.fliplr:
                image, labels = flip_lr(image, labels)

        targets = torch.from_numpy(_normalised_targets(labels, image.shape[1], image.shape[0]))
        chw = torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)))  # BGR HWC -> RGB CHW
        return chw, targets, self.image_files[index], shape_info

    def load_image(self, index: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """Image `index` as BGR resized so its long side is imgsz; its original and resized (h, w).

        Raises ImageReadError when the file cannot be decoded any more."""
        if self._images is not None:
            image = self._images[index]
            if image is None:  # failed while caching: try the file again (it may be back)
                return self._read_resized(index)
            w0, h0 = self.shapes[index]
            return image, (int(h0), int(w0)), image.shape[:2]
        return self._read_resized(index)

    def load_readable(self, index: int) -> tuple[int, tuple[np.ndarray, tuple[int, int], tuple[int, int]]]:
        """The first of `index`, `index + 1`, ... (wrapping) whose image decodes, and `load_image` of it."""
        for offset in range(len(self)):
            candidate = (index + offset) % len(self)
            try:
                return candidate, self.load_image(candidate)
            except ImageReadError as e:
                self._report_unreadable(e)
        raise DatasetSourceError(f"{self.prefix}none of the {len(self)} images can be decoded any more")

    def _report_unreadable(self, error: ImageReadError) -> None:
        """One warning per file (per process: each loader worker reports on its own)."""
        message = str(error)
        if message not in self._unreadable_reported:
            self._unreadable_reported.add(message)
            LOGGER.warning(f"{self.prefix}{message}: changed or removed since the scan, skipped")

    def _read_resized(self, index: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        image = load_original(self.image_files[index])  # a fresh .npy of --cache disk, else the file decoded
        h0, w0 = image.shape[:2]
        ratio = self.imgsz / max(h0, w0)
        if ratio != 1:
            # Area averaging when shrinking for evaluation (no aliasing); bilinear otherwise (speed, and the
            # augmentations resample anyway).
            interpolation = cv2.INTER_LINEAR if (self.augment or ratio > 1) else cv2.INTER_AREA
            size = (min(math.ceil(w0 * ratio), self.imgsz), min(math.ceil(h0 * ratio), self.imgsz))
            image = cv2.resize(image, size, interpolation=interpolation)
        return image, (h0, w0), image.shape[:2]

    def _cache_images(self) -> None:
        with ThreadPoolExecutor(4) as pool:
            loaded = pool.map(self._read_resized_or_none, range(len(self)))
            self._images = list(tqdm(loaded, total=len(self), desc=f"{self.prefix}caching images", leave=False))
        gigabytes = sum(x.nbytes for x in self._images if x is not None) / 1e9
        LOGGER.info(f"{self.prefix}cached {len(self)} images in RAM ({gigabytes:.2f} GB)")

    def _read_resized_or_none(self, index: int) -> np.ndarray | None:
        try:
            return self._read_resized(index)[0]
        except ImageReadError as e:
            self._report_unreadable(e)
            return None

    def _pixel_labels(self, index: int, width: float, height: float, pad_w: float, pad_h: float) -> np.ndarray:
        """Labels of image `index` as (n, 5) `cls, x1, y1, x2, y2` in pixels of an image drawn `width` x
        `height` at offset (pad_w, pad_h)."""
        lab = self.labels[index]
        out = np.zeros((len(lab), 5), dtype=np.float64)
        out[:, 0] = lab[:, 0]
        out[:, 1] = (lab[:, 1] - lab[:, 3] / 2) * width + pad_w
        out[:, 2] = (lab[:, 2] - lab[:, 4] / 2) * height + pad_h
        out[:, 3] = (lab[:, 1] + lab[:, 3] / 2) * width + pad_w
        out[:, 4] = (lab[:, 2] + lab[:, 4] / 2) * height + pad_h
        return out

    def _load_mosaic(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic of image `index` and three random others, warped and cropped to imgsz x imgsz."""
        size = self.imgsz
        centre = random_mosaic_centre(size, rng)
        images, labels = [], []
        for i in [index, *rng.integers(0, len(self), 3).tolist()]:
            i, (image, _, (h, w)) = self.load_readable(i)
            images.append(image)
            labels.append(self._pixel_labels(i, w, h, 0, 0))
        canvas, labels = mosaic4(images, labels, size, centre)
        return self._random_perspective(canvas, labels, rng, border=(-(size // 2), -(size // 2)))

    def _random_perspective(
        self, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, border: tuple[int, int] = (0, 0)
    ) -> tuple[np.ndarray, np.ndarray]:
        """`random_perspective` with this dataset's geometric hyperparameters."""
        hyp = self.hyp
        return random_perspective(
            image, labels, rng, hyp.degrees, hyp.translate, hyp.scale, hyp.shear, hyp.perspective, border
        )

    # -- batching -----------------------------------------------------------------------------------------
    @staticmethod
    def collate_fn(
        batch: list[tuple[torch.Tensor, torch.Tensor, str, ShapeInfo] | None],
    ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[ShapeInfo]]:
        """Stack items into `(images (B, 3, H, W) uint8, targets (M, 6), paths, shapes)`; column 0 of the
        targets is the image's index in the batch. None items (images that could not be decoded during
        evaluation) are left out; a batch of only those is empty (B = 0, H = W = 0).

        Items of different sizes (e.g. rect batches split across ranks) are padded at the bottom/right to
        the largest, and their normalised targets rescaled to the padded size.
        """
        items = [item for item in batch if item is not None]
        if not items:
            return torch.zeros((0, 3, 0, 0), dtype=torch.uint8), torch.zeros((0, 6)), [], []
        images, labels, paths, shapes = zip(*items)
        height = max(im.shape[1] for im in images)
        width = max(im.shape[2] for im in images)
        targets = []
        padded = []
        for i, (image, lab) in enumerate(zip(images, labels)):
            lab = lab.clone()
            lab[:, 0] = i
            h, w = image.shape[1:]
            if (h, w) != (height, width):
                canvas = image.new_full((3, height, width), PAD_COLOR[0])
                canvas[:, :h, :w] = image
                image = canvas
                lab[:, [2, 4]] *= w / width
                lab[:, [3, 5]] *= h / height
            padded.append(image)
            targets.append(lab)
        return torch.stack(padded), torch.cat(targets), list(paths), list(shapes)


def _normalised_targets(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(n, 5) pixel `cls x1 y1 x2 y2` -> (n, 6) `0 cls x y w h` normalised to (width, height), clipped to the
    image; boxes left with no area are dropped."""
    boxes = labels[:, 1:5].copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, classes = boxes[keep], labels[keep, 0]
    out = np.zeros((len(boxes), 6), dtype=np.float32)
    out[:, 1] = classes
    out[:, 2] = (boxes[:, 0] + boxes[:, 2]) / 2 / width
    out[:, 3] = (boxes[:, 1] + boxes[:, 3]) / 2 / height
    out[:, 4] = (boxes[:, 2] - boxes[:, 0]) / width
    out[:, 5] = (boxes[:, 3] - boxes[:, 1]) / height
    return out
