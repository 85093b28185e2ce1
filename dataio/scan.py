"""Checking every image and label of a split once (in threads, with a progress bar), with the label cache."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataio.image_io import verify_image
from dataio.label_cache import ScanResult, cache_path_for, files_hash, is_writable_dir, load_cache, save_cache
from dataio.label_checks import LabelCheck, Problem, check_label_file
from dataio.sources import label_path_for
from utils.logging import LOGGER

MAX_LOGGED_PROBLEMS = 200  # the rest are in ScanResult.problems and counted in the summary


def _check_pair(image: Path, label: Path, nc: int | None) -> tuple[tuple[int, int] | None, LabelCheck, list[Problem]]:
    size, reason = verify_image(image)
    if reason is not None:
        return (
            None,
            LabelCheck(np.zeros((0, 5), np.float32), True, [], "found"),
            [Problem(str(image), reason, "image", "skipped")],
        )
    return size, check_label_file(label, nc), []


def scan_images(image_files: Sequence[Path], nc: int | None, prefix: str = "") -> ScanResult:
    """Check every image and its label file; keep the usable ones. Does not read or write any cache."""
    label_files = [label_path_for(p) for p in image_files]
    workers = min(8, os.cpu_count() or 1)
    kept_images, kept_labels, labels, shapes, problems = [], [], [], [], []
    status = Counter()
    with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
        results = pool.map(lambda pair: _check_pair(pair[0], pair[1], nc), zip(image_files, label_files))
        bar = tqdm(
            results,
            total=len(image_files),
            desc=f"{prefix}checking images and labels",
            leave=False,
            disable=len(image_files) < 500,
        )
        for image, label, (size, check, image_problems) in zip(image_files, label_files, bar):
            problems += image_problems + check.problems
            if image_problems:
                status["images_corrupt"] += 1
                continue
            if check.skip:
                status["labels_corrupt"] += 1
                continue
            status[f"labels_{check.status}"] += 1
            kept_images.append(str(image))
            kept_labels.append(str(label))
            labels.append(check.labels)
            shapes.append(size)
    counts = {
        "found": len(image_files),
        "usable": len(kept_images),
        "images_corrupt": status["images_corrupt"],
        "labels_corrupt": status["labels_corrupt"],
        "labels_missing": status["labels_missing"],
        "labels_empty": status["labels_empty"],
        "boxes": int(sum(len(x) for x in labels)),
        "fixes": sum(p.action == "fixed" for p in problems),
    }
    return ScanResult(
        kept_images, kept_labels, labels, np.array(shapes, dtype=np.int64).reshape(-1, 2), problems, counts
    )


def load_or_scan(
    image_files: Sequence[Path], nc: int | None, cache_dir: str | Path | None = None, prefix: str = ""
) -> ScanResult:
    """The checked dataset, from the label cache when it matches the files, else by scanning (then cached).

    The cache goes into `cache_dir` when given, else next to the labels folder (`labels/train` ->
    `labels/train.cache.npz`); when neither is writable it is not saved (with a warning).
    """
    label_dir = label_path_for(image_files[0]).parent
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    key = files_hash(image_files, [label_path_for(p) for p in image_files], nc)
    # An explicit cache_dir comes first; the labels' folder is the default and the fallback.
    candidates = ([cache_path_for(label_dir, cache_dir)] if cache_dir else []) + [cache_path_for(label_dir)]
    for path in candidates:
        result = load_cache(path, key)
        if result is not None:
            LOGGER.info(f"{prefix}label cache {path} matches the files")
            report_scan(result, prefix)
            return result

    result = scan_images(image_files, nc, prefix)
    report_scan(result, prefix)
    if result.counts["labels_missing"] == result.counts["found"]:
        LOGGER.warning(
            f"{prefix}no label files at all (looked for e.g. {label_path_for(image_files[0])}): "
            f"every image is a background"
        )
    target = next((p for p in candidates if is_writable_dir(p.parent)), None)
    if target is None:
        LOGGER.warning(f"{prefix}label cache not saved: {label_dir.parent} is not writable (pass a cache_dir)")
    else:
        save_cache(target, result, key)
        LOGGER.info(f"{prefix}label cache saved to {target}")
    return result


def report_scan(result: ScanResult, prefix: str = "") -> None:
    """Log each problem (file and reason) and a one-line summary of the counts."""
    for problem in result.problems[:MAX_LOGGED_PROBLEMS]:
        LOGGER.warning(f"{prefix}{problem}")
    if len(result.problems) > MAX_LOGGED_PROBLEMS:
        LOGGER.warning(
            f"{prefix}... {len(result.problems) - MAX_LOGGED_PROBLEMS} more problems (all in dataset.problems)"
        )
    c = result.counts
    LOGGER.info(
        f"{prefix}{c['found']} images: {c['usable']} usable with {c['boxes']} boxes, "
        f"{c['labels_missing'] + c['labels_empty']} backgrounds ({c['labels_missing']} without a label file, "
        f"{c['labels_empty']} empty); skipped {c['images_corrupt']} corrupt images and {c['labels_corrupt']} "
        f"bad label files; {c['fixes']} label fixes"
    )
    if result.problems:
        kinds = Counter(p.kind for p in result.problems)
        LOGGER.info(f"{prefix}problems by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
