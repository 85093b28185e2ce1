"""`--cache disk`, as YOLOv5 has it: each image is decoded once into a `.npy` file beside it, and later epochs and
runs read that array instead of decoding the JPEG or PNG again (faster than decoding, without holding the set in
RAM).

The file is `<image name>.npy` (`tile.jpg.npy`), not YOLOv5's `tile.npy`, so `tile.jpg` and `tile.png` in one
folder do not share a cache file. A cache file older than its image, or one that does not hold an 8-bit
3-channel array, is rewritten; arrays load with `allow_pickle=False`, so a planted `.npy` cannot run code. A
folder that cannot be written to is reported once and its images are decoded as usual.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataio.image_io import ImageReadError, read_image
from utils.logging import LOGGER

NPY_SUFFIX = ".npy"


def npy_path(image: str | Path) -> Path:
    """Where the decoded array of `image` is cached: beside it, its full name plus `.npy`."""
    image = Path(image)
    return image.with_name(image.name + NPY_SUFFIX)


def read_cached(path: Path) -> np.ndarray | None:
    """The array cached at `path` if it is a usable BGR image (H, W, 3) uint8, else None."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        return None
    return array


def is_fresh(image: Path, cache: Path) -> bool:
    """The cache file exists and is not older than its image."""
    try:
        return cache.stat().st_mtime_ns >= image.stat().st_mtime_ns
    except OSError:
        return False


def write_cached(path: Path, array: np.ndarray) -> None:
    """Write through a temp file and a rename, so a reader never sees half a file (raises OSError)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_image(image: str | Path) -> np.ndarray:
    """The decoded image, from its `.npy` when that is fresh and sound, else decoded (ImageReadError as usual)."""
    image = Path(image)
    cache = npy_path(image)
    if is_fresh(image, cache):
        array = read_cached(cache)
        if array is not None:
            return array
    return read_image(image)


def build_disk_cache(images: Sequence[str], prefix: str = "") -> int:
    """Write the `.npy` of every image that lacks a fresh one; returns how many images are cached.

    Unreadable images are left to the loader (which reports them); an unwritable folder is reported once."""
    unwritable: set[Path] = set()

    def cache_one(image: str) -> bool:
        source, target = Path(image), npy_path(image)
        if is_fresh(source, target) and read_cached(target) is not None:
            return True
        if target.parent in unwritable:
            return False
        try:
            write_cached(target, read_image(source))
        except ImageReadError:
            return False
        except OSError as e:
            if target.parent not in unwritable:
                unwritable.add(target.parent)
                LOGGER.warning(f"{prefix}--cache disk: cannot write {target} ({e.strerror or e}); decoding instead")
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        done = list(tqdm(pool.map(cache_one, images), total=len(images), desc=f"{prefix}caching to disk", leave=False))
    cached = sum(done)
    LOGGER.info(f"{prefix}{cached}/{len(images)} images cached to disk as .npy beside them")
    return cached
