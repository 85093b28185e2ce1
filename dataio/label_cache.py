"""The label cache: the outcome of checking every image and label, saved so that the next run skips the checks.

Stored as a `.npz` archive of plain arrays and one JSON string (read back with `allow_pickle=False`: opening a
cache never runs code). It is keyed by a hash of every image and label path with its size and modification
time (plus the class count the checks used), so adding, removing or editing any file re-runs the checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataio.label_checks import Problem

CACHE_VERSION = 2  # 2: images checked by the loader's decoder (OpenCV), not PIL: older caches are rebuilt


@dataclass
class ScanResult:
    """Checked dataset contents: usable images with their labels and sizes, and every problem found."""

    image_files: list[str]
    label_files: list[str]
    labels: list[np.ndarray]  # per image (n, 5) float32: cls, x, y, w, h normalised
    shapes: np.ndarray  # (N, 2) int: original (width, height) after EXIF orientation
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # images, skipped, missing, empty, boxes, ...


def files_hash(image_files: Sequence[str | Path], label_files: Sequence[str | Path], nc: int | None) -> str:
    """SHA-1 over the paths, sizes and modification times of all files (absent files hash as absent)."""
    digest = hashlib.sha1(f"v{CACHE_VERSION} nc={nc}".encode())
    for path in list(image_files) + list(label_files):
        try:
            stat = os.stat(path)
            digest.update(f"\n{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"\n{path}|absent".encode())
    return digest.hexdigest()


def cache_path_for(label_dir: Path, cache_dir: str | Path | None = None) -> Path:
    """Where the cache of labels in `label_dir` lives: `<label_dir>.cache.npz`, or in `cache_dir` under a name
    made unique by the folder's full path."""
    if cache_dir is None:
        return label_dir.parent / f"{label_dir.name}.cache.npz"
    tag = hashlib.sha1(str(label_dir.resolve()).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{label_dir.name}-{tag}.cache.npz"


def save_cache(path: Path, result: ScanResult, key: str) -> None:
    """Write atomically (temporary file, then rename) so a crashed or parallel run never leaves half a file."""
    counts = np.array([len(x) for x in result.labels], dtype=np.int64)
    labels = np.concatenate(result.labels) if result.labels else np.zeros((0, 5), np.float32)
    meta = {
        "version": CACHE_VERSION,
        "key": key,
        "label_files": result.label_files,
        "problems": [vars(p) for p in result.problems],
        "counts": result.counts,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                meta=np.array(json.dumps(meta)),
                image_files=np.array(result.image_files, dtype=np.str_),
                shapes=np.asarray(result.shapes, dtype=np.int64).reshape(-1, 2),
                counts=counts,
                labels=labels.astype(np.float32),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cache(path: Path, key: str) -> ScanResult | None:
    """The cached result if `path` exists, is readable and matches `key`; otherwise None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
                return None
            image_files = [str(p) for p in archive["image_files"]]
            shapes = archive["shapes"]
            counts = archive["counts"]
            labels = archive["labels"]
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # unreadable or from another version: rebuilt by the caller
    if len(image_files) != len(counts) or len(meta["label_files"]) != len(image_files) or counts.sum() != len(labels):
        return None
    per_image = np.split(labels, np.cumsum(counts)[:-1]) if len(counts) else []
    return ScanResult(
        image_files=image_files,
        label_files=list(meta["label_files"]),
        labels=[np.ascontiguousarray(x, dtype=np.float32) for x in per_image],
        shapes=shapes,
        problems=[Problem(**p) for p in meta["problems"]],
        counts=dict(meta["counts"]),
    )


def is_writable_dir(directory: Path) -> bool:
    """True when a file can be created in the existing `directory` (tried: permission bits can lie)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False
