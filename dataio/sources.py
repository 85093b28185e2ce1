"""Turning a split source into a list of image files, and pairing each image with its label file.

A source is a directory (searched recursively), a `.txt` list file (one image path per line; relative lines
are relative to the list file's folder), a glob pattern, a single image, or a list of any of these.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from dataio.image_io import IMAGE_SUFFIXES
from utils.errors import UserError

SplitSource = str | Path | Sequence[str | Path]  # a runtime alias: Python >= 3.10
_GLOB_CHARS = set("*?[")


class DatasetSourceError(UserError, FileNotFoundError):
    """A split source that does not exist or holds no images; the message names it."""


def is_glob(text: str) -> bool:
    """True when `text` is a glob pattern rather than a path."""
    return any(c in _GLOB_CHARS for c in text)


def _as_list(source: SplitSource) -> list[str | Path]:
    if isinstance(source, (str, Path)):
        return [source]
    return list(source)


def _images_in_dir(directory: Path) -> Iterable[Path]:
    for dirpath, _, filenames in os.walk(directory, followlinks=True):
        for filename in filenames:
            if filename.lower().endswith(IMAGE_SUFFIXES):
                yield Path(dirpath) / filename


def _images_in_list_file(list_file: Path) -> list[Path]:
    images = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line)
        images.append(path if path.is_absolute() else list_file.parent / path)
    return images


def list_images(source: SplitSource) -> list[Path]:
    """All image files a source names, as absolute paths, sorted and without duplicates.

    Files named by a list file are returned even if they do not exist: the dataset checks report them.
    Raises DatasetSourceError for a path that does not exist or a source with no images.
    """
    found: list[Path] = []
    for item in _as_list(source):
        text = str(item)
        if is_glob(text):
            for match in sorted(glob.glob(text, recursive=True)):
                path = Path(match)
                if path.is_dir():
                    found += _images_in_dir(path)
                elif path.suffix.lower() in IMAGE_SUFFIXES:
                    found.append(path)
            continue
        path = Path(item)
        if path.is_dir():
            found += _images_in_dir(path)
        elif path.is_file() and path.suffix.lower() == ".txt":
            found += _images_in_list_file(path)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.append(path)
        elif path.is_file():
            raise DatasetSourceError(f"{path}: not an image, a folder or a .txt list of images")
        else:
            raise DatasetSourceError(f"{path}: does not exist")
    # Absolute, normalised paths: the label cache key and the reported file names do not depend on the cwd.
    unique = sorted({os.path.abspath(p) for p in found})
    if not unique:
        raise DatasetSourceError(
            f"no images found in {', '.join(map(str, _as_list(source)))} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return [Path(p) for p in unique]


def label_path_for(image: str | Path) -> Path:
    """The label file of an image: the last `images` folder in its path becomes `labels`, suffix `.txt`.

    Without an `images` folder in the path the label sits next to the image.
    """
    parts = list(Path(image).parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts).with_suffix(".txt")
