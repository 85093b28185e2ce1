"""Calibration images for int8 export: images of the data's train split, preprocessed exactly as inference does
(engine/predict.py: letterbox into the export size, BGR->RGB, CHW, [0, 1])."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dataio.image_io import ImageReadError, read_image
from dataio.sources import list_images
from engine.predict import preprocess
from utils.errors import OptionError
from utils.logging import LOGGER

DEFAULT_CALIBRATION_IMAGES = 300  # NNCF's default subset size; all of a smaller train split


class CalibrationImages:
    """`count` images spread evenly over a split, served as float32 batches (batch, 3, h, w) of the export's
    batch size. Iterable any number of times (quantizers pass over the data more than once); images are read
    on demand, so 300 images at 640 px are never all in memory."""

    def __init__(
        self, sources: list[str], imgsz: tuple[int, int], stride: int, count: int, batch: int = 1, where: str = ""
    ) -> None:
        files = list_images(sources)
        if not files:
            raise OptionError(f"--data {where}: the train split has no images to calibrate int8 quantization with")
        count = min(count, len(files))
        picks = np.linspace(0, len(files) - 1, count).round().astype(int)  # spread over the split, deterministic
        self.files: list[Path] = [files[i] for i in np.unique(picks)]
        self.imgsz, self.stride, self.batch = imgsz, stride, batch

    def __len__(self) -> int:
        """The number of batches."""
        return -(-len(self.files) // self.batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        images = []
        for path in self.files:
            try:
                images.append(read_image(path))
            except ImageReadError as e:  # one bad file does not stop an export; fewer images calibrate it
                LOGGER.warning(f"calibration: {e}; skipped")
                continue
            if len(images) == self.batch:
                yield self._batch(images)
                images = []
        if images:  # a short last batch is padded with its own first image (a fixed-batch model needs full ones)
            yield self._batch(images + images[:1] * (self.batch - len(images)))

    def _batch(self, images: list[np.ndarray]) -> np.ndarray:
        batch, _ = preprocess(images, self.imgsz, self.stride, rect=False)
        return batch.numpy()
