"""detect: every source kind that runs here, saved outputs, run-directory numbering, unreadable files skipped,
and detect.py without --weights."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from detect import main as detect_main
from engine.detect import SAMPLE_IMAGES, detect
from engine.sources import SourceError
from tests.engine_helpers import shared_checkpoint, shared_exports, write_image, write_video

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(image|video) \d+/\d+ .*: \d+x\d+ .*, pre [\d.]+ms, inference [\d.]+ms, NMS [\d.]+ms$")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """images/ (two images, a corrupt .jpg, a non-media file), clip.mp4 (6 frames), list.txt."""
    root = tmp_path_factory.mktemp("media")
    write_image(root / "images" / "a.jpg", 48, 96, seed=1)
    write_image(root / "images" / "b.png", 64, 64, seed=2)
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "images" / "notes.md").write_text("not an image")
    write_video(root / "clip.mp4", frames=6)
    (root / "list.txt").write_text("images/a.jpg\nimages/missing.jpg\n\nclip.mp4\n")
    return root


@pytest.fixture(scope="module")
def onnx_weights() -> Path:
    files = shared_exports("yolov5n.yaml")
    assert "onnx" in files, [r.error for r in files["results"]]
    return files["onnx"]


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if LINE.match(line)]


def test_image_with_labels_and_crops(media: Path, onnx_weights: Path, tmp_path: Path, capsys) -> None:
    run = detect(
        media / "images" / "a.jpg",
        onnx_weights,
        imgsz=64,
        conf_thres=0.3,
        project=tmp_path,
        save_txt=True,
        save_conf=True,
        save_crop=True,
    )
    (result,) = run.results
    assert run.save_dir == tmp_path / "exp" and len(result) > 0
    annotated = cv2.imread(str(run.save_dir / "a.jpg"))
    assert annotated is not None and annotated.shape == (48, 96, 3)
    labels = (run.save_dir / "labels" / "a.txt").read_text().splitlines()
    assert len(labels) == len(result)
    for line, cls in zip(labels, result.classes):
        values = line.split()
        assert len(values) == 6 and int(values[0]) == cls and all(0 <= float(v) <= 1 for v in values[1:])
    crops = list((run.save_dir / "crops").rglob("*.jpg"))
    assert len(crops) == len(result)
    assert {c.parent.name for c in crops} == {result.names[int(c)] for c in result.classes}
    (line,) = _lines(capsys.readouterr().out)
    assert line.startswith(
        f"image 1/1 {media / 'images' / 'a.jpg'}: 32x64 "
    )  # 48x96 resized to 32x64: no padding needed


def test_folder_skips_unreadable_file(media: Path, onnx_weights: Path, tmp_path: Path, capsys) -> None:
    run = detect(media / "images", onnx_weights, imgsz=64, project=tmp_path, nosave=True)
    assert [Path(r.path).name for r in run.results] == ["a.jpg", "b.png"]
    assert [Path(p).name for p, _ in run.failures] == ["corrupt.jpg"]
    out = capsys.readouterr().out
    assert "skipping" in out and "corrupt.jpg: cannot be read as an image" in out
    assert len(_lines(out)) == 2
    assert not run.save_dir.exists()  # --nosave: nothing written


def test_glob(media: Path, onnx_weights: Path, tmp_path: Path) -> None:
    run = detect(str(media / "images" / "*.jpg"), onnx_weights, imgsz=64, project=tmp_path, nosave=True)
    assert [Path(r.path).name for r in run.results] == ["a.jpg"]
    assert [Path(p).name for p, _ in run.failures] == ["corrupt.jpg"]


def test_video_with_stride(media: Path, onnx_weights: Path, tmp_path: Path, capsys) -> None:
    run = detect(media / "clip.mp4", onnx_weights, imgsz=64, project=tmp_path, vid_stride=2, save_txt=True)
    assert len(run.results) == 3
    assert sorted(p.name for p in (run.save_dir / "labels").iterdir()) == ["clip_1.txt", "clip_3.txt", "clip_5.txt"]
    capture = cv2.VideoCapture(str(run.save_dir / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    lines = _lines(capsys.readouterr().out)
    assert [line.split(")")[0] for line in lines] == [f"video 1/1 (frame {n}/6" for n in (1, 3, 5)]


def test_txt_list(media: Path, onnx_weights: Path, tmp_path: Path) -> None:
    run = detect(media / "list.txt", onnx_weights, imgsz=64, project=tmp_path, nosave=True)
    assert [Path(r.path).name for r in run.results] == ["a.jpg"] + ["clip.mp4"] * 6
    ((path, reason),) = run.failures
    assert path == "images/missing.jpg" and "list.txt:2" in reason


def test_run_directories_increment(media: Path, onnx_weights: Path, tmp_path: Path) -> None:
    image = media / "images" / "b.png"
    first = detect(image, onnx_weights, imgsz=64, project=tmp_path)
    second = detect(image, onnx_weights, imgsz=64, project=tmp_path)
    again = detect(image, onnx_weights, imgsz=64, project=tmp_path, name="exp", exist_ok=True)
    assert [first.save_dir.name, second.save_dir.name, again.save_dir.name] == ["exp", "exp2", "exp"]
    assert (second.save_dir / "b.png").is_file()


def test_bad_sources(onnx_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="source not found"):
        detect(tmp_path / "nothing.jpg", onnx_weights, project=tmp_path)
    with pytest.raises(SourceError, match="cannot open stream or webcam 99"):
        detect("99", onnx_weights, project=tmp_path, imgsz=64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images or videos found"):
        detect(tmp_path / "empty", onnx_weights, project=tmp_path)


def test_detect_without_weights(media: Path, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    assert detect_main(["--source", str(media / "images" / "a.jpg"), "--runs-dir", str(runs)]) == 2
    assert "python train.py --cfg yolov5s_mobileone.yaml" in capsys.readouterr().err

    best = runs / "train" / "exp" / "weights" / "best.pt"
    best.parent.mkdir(parents=True)
    shutil.copy(shared_checkpoint("yolov5n.yaml"), best)
    result = subprocess.run(  # the script as users run it: a .pt model found under the runs directory
        [sys.executable, "detect.py", "--source", str(media / "images"), "--runs-dir", str(runs), "--imgsz", "64"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"No --weights given: using the newest trained model {best}" in result.stdout
    assert len(_lines(result.stdout)) == 2 and "corrupt.jpg" in result.stdout
    assert sorted(p.name for p in (runs / "detect" / "exp").iterdir()) == ["a.jpg", "b.png"]


def test_readme_first_detect_command_runs_after_training(tmp_path: Path, monkeypatch, capsys) -> None:
    """The README's first detect command, as a new user runs it right after training: the newest best.pt and
    the sample images shipped in data/images (the default source, found from any working directory)."""
    readme = (ROOT / "README.md").read_text()
    commands = [line.split("#")[0].split() for line in readme.splitlines() if line.startswith("python detect.py")]
    best = tmp_path / "runs" / "train" / "exp" / "weights" / "best.pt"  # where train.py leaves it
    best.parent.mkdir(parents=True)
    shutil.copy(shared_checkpoint("yolov5n.yaml"), best)
    monkeypatch.chdir(tmp_path)
    assert detect_main([*commands[0][2:], "--imgsz", "64"]) == 0

    samples = sorted(p.name for p in SAMPLE_IMAGES.glob("*.jpg"))
    assert len(samples) >= 2 and all((SAMPLE_IMAGES / name).stat().st_size < 150_000 for name in samples)
    assert sorted(p.name for p in (tmp_path / "runs" / "detect" / "exp").iterdir()) == samples
    assert len(_lines(capsys.readouterr().out)) == len(samples)
    for command in commands:  # every path the README gives detect.py as --source is in the clone
        if "--source" in command:
            assert (ROOT / command[command.index("--source") + 1]).exists(), command
