"""Names taken from data (class names in a checkpoint or a data YAML, source file names) never write outside
the run directory: detect.py --save-crop/--save-txt and val.py --save-txt/--save-json with plots, fed
traversal names, write only under their run directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

import detect as detect_script
import val as val_script
from tests.engine_helpers import make_checkpoint, write_image
from tests.hostile import TRAVERSAL_NAMES, files_under, hostile_names
from tests.synthetic_data import make_synthetic_dataset
from utils.checkpoint import load_checkpoint, write_checkpoint_file
from utils.errors import UnsafePathError
from utils.files import path_inside, safe_name

NAMES = ("../../../../tmp/x", "/tmp/x", "a/../../b", "", "..", ".", "...", "x/..", "C:\\x", "a\x00b", "\n")


@pytest.mark.parametrize("name", NAMES + TRAVERSAL_NAMES)
def test_safe_name_is_one_plain_component(tmp_path: Path, name: str) -> None:
    safe = safe_name(name)
    assert safe and safe not in (".", "..") and not safe.startswith(".")
    assert not any(c in safe for c in "/\\\x00:")
    assert Path(safe).name == safe
    path = path_inside(tmp_path, name, name)
    assert path.resolve().is_relative_to(tmp_path.resolve()) and path.resolve() != tmp_path.resolve()


def test_ordinary_names_are_kept() -> None:
    assert [safe_name(n) for n in ("tree", "traffic light", "café", "img_001.jpg", 7)] == [
        "tree",
        "traffic light",
        "café",
        "img_001.jpg",
        "7",
    ]
    long = safe_name("a" * 300 + ".txt")
    assert len(long) == 100 and long.endswith("a.txt")


def test_a_planted_symlink_cannot_redirect(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    crops = tmp_path / "run" / "crops"
    crops.mkdir(parents=True)
    os.symlink(outside, crops / "tree")
    with pytest.raises(UnsafePathError, match="outside"):
        path_inside(crops, "tree")


@pytest.fixture
def hostile_checkpoint(tmp_path: Path) -> Path:
    """A 3-class random-weight checkpoint that detects plenty (classes renamed by each test)."""
    return make_checkpoint(tmp_path / "weights" / "hostile.pt", "yolov5n.yaml", nc=3)


def _rename_classes(checkpoint: Path, names: dict[int, str]) -> None:
    """Edit the class names stored in the checkpoint file, as a crafted file would hold them."""
    ckpt = load_checkpoint(checkpoint)
    ckpt["names"] = names
    write_checkpoint_file(checkpoint, ckpt)


def test_detect_save_crop_with_traversal_class_names(tmp_path: Path, hostile_checkpoint: Path, capsys) -> None:
    watched = tmp_path / "watched"  # where an absolute class name points
    names = hostile_names(watched, 3)
    _rename_classes(hostile_checkpoint, names)
    sources = tmp_path / "sources"
    for k in range(2):
        write_image(sources / f"img{k}.jpg", 64, 64, seed=k)
    project = tmp_path / "deep" / "er" / "runs"
    before = files_under(tmp_path)
    argv = ["--weights", str(hostile_checkpoint), "--source", str(sources), "--imgsz", "64", "--conf-thres", "0.01"]
    assert detect_script.main([*argv, "--save-crop", "--save-txt", "--project", str(project)]) == 0
    run_dir = project / "exp"
    written = files_under(tmp_path) - before
    outside = {p for p in written if not (p.is_relative_to(project) or project.is_relative_to(p))}  # or parents
    assert written and not outside, sorted(outside)
    assert not watched.exists()
    crop_folders = {p.name for p in (run_dir / "crops").iterdir()}
    assert crop_folders and crop_folders <= {safe_name(n) for n in names.values()}
    assert all(p.resolve().is_relative_to(run_dir.resolve()) for p in run_dir.rglob("*"))


def test_val_with_traversal_class_names_in_the_data_yaml(tmp_path: Path, hostile_checkpoint: Path) -> None:
    watched = tmp_path / "watched"
    names = hostile_names(watched, 3)
    _rename_classes(hostile_checkpoint, names)  # the model's classes are the data's: val.py accepts them
    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=2, imgsz=64, nc=3, val_is_train=True)
    config = yaml.safe_load(data.read_text())
    data.write_text(yaml.safe_dump({**config, "names": names}))
    project = tmp_path / "runs"
    before = files_under(tmp_path)
    argv = ["--weights", str(hostile_checkpoint), "--data", str(data), "--imgsz", "64", "--workers", "0"]
    assert val_script.main([*argv, "--save-txt", "--save-json", "--verbose", "--project", str(project)]) == 0
    written = files_under(tmp_path) - before
    outside = {p for p in written if not (p.is_relative_to(project) or project.is_relative_to(p))}
    assert all(".cache" in p.name for p in outside), sorted(outside)  # label caches sit beside the labels
    assert not watched.exists()
    assert (project / "exp" / "labels").is_dir()
