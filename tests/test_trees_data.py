"""The bundled NEON tree-crown dataset (data/trees): present, consistent, split by source image."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataio.data_config import load_data_config
from dataio.dataset import YoloDataset
from dataio.label_checks import check_label_file
from dataio.sources import label_path_for, list_images

TRAIN_SOURCES = {  # source image: (width, height)
    "2019_YELL_2_528000_4978000_image_crop2": (2299, 2472),
    "2019_YELL_2_541000_4977000_image_crop": (1249, 1035),
}
VAL_SOURCES = {"OSBS_029", "SOAP_061"}
TILE = 416


def _windows(length: int) -> list[int]:
    """Expected tile offsets: step TILE/2, and one last window flush with the edge."""
    offsets = list(range(0, length - TILE + 1, TILE // 2))
    return offsets + ([length - TILE] if offsets[-1] != length - TILE else [])


@pytest.fixture(scope="module")
def trees():
    config = load_data_config("trees.yaml")
    return config, list_images(config.train), list_images(config.val)


def test_config_and_files(trees) -> None:
    config, train, val = trees
    assert config.names == {0: "tree"} and config.file.parent.name == "data"
    assert len(train) == 145 and len(val) == 2
    root = config.root
    assert (root / "README.md").is_file() and "CC0" in (root / "LICENSE").read_text()
    assert "MIT License" in (root / "LICENSE").read_text()
    size_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".cache" not in p.name) / 1e6
    assert size_mb < 12, f"bundled data grew to {size_mb:.1f} MB"


def test_all_labels_valid_and_counted(trees) -> None:
    _, train, val = trees
    for images, expected_boxes in ((train, 3116), (val, 98)):
        boxes = 0
        for image in images:
            check = check_label_file(label_path_for(image), nc=1)
            assert check.status in ("found", "empty") and not check.skip and not check.problems, image
            assert (check.labels[:, 3:] > 0).all()
            boxes += len(check.labels)
        assert boxes == expected_boxes


def test_split_by_source_image_and_tiling(trees) -> None:
    _, train, val = trees
    assert {p.stem for p in val} == VAL_SOURCES
    for p in val:
        with Image.open(p) as im:
            assert im.size == (400, 400)
    per_source = Counter()
    offsets: dict[str, set[tuple[int, int]]] = {s: set() for s in TRAIN_SOURCES}
    for p in train:
        match = re.fullmatch(r"(.+)_(\d+)_(\d+)", p.stem)
        assert match and match.group(1) in TRAIN_SOURCES, p.name  # no validation image among the tiles
        per_source[match.group(1)] += 1
        offsets[match.group(1)].add((int(match.group(2)), int(match.group(3))))
        with Image.open(p) as im:
            assert im.size == (TILE, TILE)
    assert per_source == {"2019_YELL_2_528000_4978000_image_crop2": 121, "2019_YELL_2_541000_4977000_image_crop": 24}
    for source, (w, h) in TRAIN_SOURCES.items():
        assert offsets[source] == {(x, y) for x in _windows(w) for y in _windows(h)}


def test_dataset_loads_without_problems(trees, tmp_path: Path) -> None:
    config, _, _ = trees
    for split, n, boxes in (("train", 145, 3116), ("val", 2, 98)):
        dataset = YoloDataset(config.split(split), imgsz=TILE, nc=config.nc, cache_dir=tmp_path)
        assert len(dataset) == n and not dataset.problems and dataset.counts["boxes"] == boxes
    assert dataset.counts["labels_empty"] == 0


def _converter():
    path = Path(__file__).resolve().parent.parent / "tools" / "make_trees_dataset.py"
    spec = importlib.util.spec_from_file_location("make_trees_dataset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_tiling_rules() -> None:
    tool = _converter()
    assert tool.window_offsets(2299, TILE, 0.5) == _windows(2299) and len(_windows(2299)) == 11
    assert len(tool.window_offsets(1249, TILE, 0.5)) * len(tool.window_offsets(1035, TILE, 0.5)) == 24
    boxes = np.array(
        [
            [400.0, 10, 440, 50],  # 16 of 40 px wide inside x<416: 40 % visible -> dropped
            [390.0, 60, 430, 100],  # 26 of 40 px: 65 % visible -> kept, clipped
            [100.0, 100, 120, 130],
        ]
    )  # fully inside
    kept = tool.boxes_in_window(boxes, 0, 0, (TILE, TILE), 0.5)
    assert kept.tolist() == [[390, 60, 416, 100], [100, 100, 120, 130]]
    assert tool.yolo_lines(kept[1:], (TILE, TILE)) == "0 0.264423 0.276442 0.048077 0.072115\n"
