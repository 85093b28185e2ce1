"""Issue 14 item 8: one decoder decides what is usable, and an image that stops decoding mid-run is skipped.

An ICO/PCX/TGA file named `.jpg` used to pass the (PIL) check, get cached as usable, and crash training and
val.py in OpenCV. Now the scan decodes with the loader's own call; an image that fails after the scan (changed
or removed) gives one warning naming the file and is replaced (training) or left out (validation, detect).
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import dataio.label_cache as label_cache
from dataio.dataset import YoloDataset
from dataio.image_io import read_image, verify_image
from dataio.scan import load_or_scan
from dataio.sources import list_images
from engine.detect import detect
from engine.train_options import TrainOptions
from engine.trainer import train
from tests.engine_helpers import make_checkpoint
from tests.helpers import STILL_HYP
from tests.synthetic_data import make_synthetic_dataset
from val import main as val_main

FOREIGN_FORMATS = ("ICO", "PCX", "TGA")  # PIL opens them, OpenCV does not


def _foreign_bytes(image_format: str, size: int = 48) -> bytes:
    rgb = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=image_format)
    return buffer.getvalue()


def _dataset(root: Path, n: int = 4, imgsz: int = 64) -> Path:
    return make_synthetic_dataset(root, n_train=n, n_val=n, imgsz=imgsz, nc=2)


def _corrupt_keeping_cache_key(path: Path) -> None:
    """Make `path` undecodable with its size and modification time unchanged: the label cache still matches it,
    as when a file changes during a run (after the scan)."""
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("image_format", FOREIGN_FORMATS)
def test_foreign_format_named_jpg_is_refused_by_the_scan(image_format: str, tmp_path: Path, capsys) -> None:
    data = _dataset(tmp_path, n=2)
    fake = tmp_path / "images" / "train" / "fake.jpg"
    fake.write_bytes(_foreign_bytes(image_format))
    (tmp_path / "labels" / "train" / "fake.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    Image.open(fake).verify()  # PIL, the old checker, accepts it
    size, reason = verify_image(fake)
    assert size is None and reason.startswith("not an image (unrecognised format")
    with pytest.raises(OSError, match="fake.jpg: not a decodable image"):
        read_image(fake)

    dataset = YoloDataset(yaml.safe_load(data.read_text())["path"] + "/images/train", imgsz=64, nc=2)
    out = capsys.readouterr().out
    assert str(fake) not in dataset.image_files and dataset.counts["images_corrupt"] == 1
    assert f"{fake}: not an image" in out
    for index in range(len(dataset)):  # every kept image loads
        dataset[index]


def test_cache_written_by_the_old_checker_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    """A version-1 cache that lists the ICO file as usable (what the PIL checker wrote) is not trusted."""
    _dataset(tmp_path, n=2)
    fake = tmp_path / "images" / "train" / "fake.jpg"
    fake.write_bytes(_foreign_bytes("ICO"))
    images = list_images(tmp_path / "images" / "train")
    fresh = load_or_scan(images, 2)  # the current checker, saved under the current version
    stale = label_cache.ScanResult(
        [str(p) for p in images],
        fresh.label_files + [str(tmp_path / "labels" / "train" / "fake.txt")],
        fresh.labels + [np.zeros((0, 5), np.float32)],
        np.array([[64, 64]] * len(images)),
        [],
        dict(fresh.counts, usable=len(images), images_corrupt=0),
    )
    cache = label_cache.cache_path_for(tmp_path / "labels" / "train")
    with monkeypatch.context() as patched:
        patched.setattr(label_cache, "CACHE_VERSION", 1)
        label_cache.save_cache(cache, stale, label_cache.files_hash(images, stale.label_files, 2))
        assert label_cache.load_cache(cache, label_cache.files_hash(images, stale.label_files, 2)) is not None
    result = load_or_scan(images, 2)
    assert str(fake) not in result.image_files and result.counts["images_corrupt"] == 1


@pytest.mark.parametrize("mosaic, cache_images", [(1.0, False), (0.0, False), (0.0, True)])
def test_training_item_replaced_when_an_image_fails_mid_run(
    mosaic: float, cache_images: bool, tmp_path: Path, capsys
) -> None:
    _dataset(tmp_path, n=4)
    hyp = dict(STILL_HYP, mosaic=mosaic, fliplr=0.5)

    def build() -> YoloDataset:
        return YoloDataset(tmp_path / "images" / "train", imgsz=64, augment=True, hyp=hyp, nc=2, seed=3)

    dataset = build()
    broken = Path(dataset.image_files[1])
    capsys.readouterr()
    if cache_images:
        broken.unlink()  # removed before the images are cached in RAM: one warning, then tried again per item
        dataset._cache_images()
    else:
        _corrupt_keeping_cache_key(broken)
    items = [dataset[i] for i in range(len(dataset))]
    items += [dataset[i] for i in range(len(dataset))]  # a second epoch's worth: still one warning
    out = capsys.readouterr().out
    assert out.count(f"{broken}: ") == 1 and "skipped" in out, out
    paths = [path for _, _, path, _ in items]
    if mosaic == 0.0:  # (a mosaic's path names the image it was drawn for, whichever tiles it got)
        assert str(broken) not in paths
        assert paths[1] == dataset.image_files[2]  # the next readable index, labels and path alike
        assert len(items[1][1]) == len(dataset.labels[2])
    if not cache_images:  # the substitute is a function of the files: another dataset draws the same items
        again = build()
        for index, (image, targets, path, _) in enumerate(items[: len(dataset)]):
            other_image, other_targets, other_path, _ = again[index]
            assert path == other_path and torch.equal(image, other_image) and torch.equal(targets, other_targets)


def test_evaluation_leaves_a_failed_image_out(tmp_path: Path, capsys) -> None:
    _dataset(tmp_path, n=3)
    dataset = YoloDataset(tmp_path / "images" / "val", imgsz=64, nc=2)
    broken = Path(dataset.image_files[0])
    _corrupt_keeping_cache_key(broken)
    assert dataset[0] is None
    images, targets, paths, _ = YoloDataset.collate_fn([dataset[i] for i in range(3)])
    assert len(images) == 2 and str(broken) not in paths and set(targets[:, 0].tolist()) <= {0.0, 1.0}
    images, targets, paths, shapes = YoloDataset.collate_fn([dataset[0]])
    assert images.shape[0] == 0 and len(targets) == 0 and paths == [] == shapes
    assert capsys.readouterr().out.count(f"{broken}: ") == 1


def test_train_and_val_finish_when_an_image_fails_after_the_scan(tmp_path: Path, capfd) -> None:
    """The label cache still lists the file (same size and time), so only the loader finds out. (capfd: val.py's
    loader workers are processes, whose warnings go to the real stdout.)"""
    data = _dataset(tmp_path / "data", n=3)
    for split in ("train", "val"):
        load_or_scan(list_images(tmp_path / "data" / "images" / split), 2)  # caches made while all were good
    broken_val = tmp_path / "data" / "images" / "val" / "val_001.png"
    broken_train = tmp_path / "data" / "images" / "train" / "train_001.png"
    _corrupt_keeping_cache_key(broken_val)
    _corrupt_keeping_cache_key(broken_train)
    hyp = tmp_path / "still.yaml"
    hyp.write_text(yaml.safe_dump(STILL_HYP))
    options = TrainOptions(
        cfg="yolov5n.yaml",
        data=str(data),
        hyp=str(hyp),
        imgsz=64,
        batch_size=2,
        epochs=1,
        workers=0,
        cache="none",
        noplots=True,
        project=str(tmp_path / "train"),
    )
    capfd.readouterr()
    run = train(options)
    out = capfd.readouterr().out
    assert out.count(f"{broken_train}: not a decodable image") == 1, out  # training warns once
    assert f"{broken_val}: not a decodable image" in out  # and the per-epoch validation goes on without it

    argv = ["--weights", str(run / "weights" / "best.pt"), "--data", str(data), "--imgsz", "64", "--batch-size", "1"]
    assert val_main([*argv, "--project", str(tmp_path / "val"), "--save-json"]) == 0
    out = capfd.readouterr().out
    assert out.count(f"{broken_val}: not a decodable image") == 1, out
    assert re.search(r"^\s+all\s+2\s", out, re.M), out  # two of the three images scored


def test_detect_skips_a_foreign_format_named_jpg(tmp_path: Path, capsys) -> None:
    weights = make_checkpoint(tmp_path / "random.pt", cfg="yolov5n.yaml", nc=2)
    images = tmp_path / "images"
    images.mkdir()
    make_synthetic_dataset(tmp_path / "synthetic", n_train=1, n_val=0, imgsz=64, nc=2)
    shutil.copy(tmp_path / "synthetic" / "images" / "train" / "train_000.png", images / "good.png")
    for image_format in FOREIGN_FORMATS:
        (images / f"{image_format.lower()}.jpg").write_bytes(_foreign_bytes(image_format))
    run = detect(images, weights, imgsz=64, project=tmp_path / "runs", nosave=True)
    assert [Path(r.path).name for r in run.results] == ["good.png"]
    assert sorted(Path(p).name for p, _ in run.failures) == ["ico.jpg", "pcx.jpg", "tga.jpg"]
    out = capsys.readouterr().out
    for image_format in FOREIGN_FORMATS:
        assert out.count(f"{image_format.lower()}.jpg: cannot be read as an image") == 1
