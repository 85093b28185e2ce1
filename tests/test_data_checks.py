"""Image and label checks against a generated corpus of broken and unusual files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dataio.check import main as check_main
from dataio.dataset import YoloDataset
from dataio.image_io import read_image, verify_image
from dataio.label_checks import check_label_file
from dataio.sources import DatasetSourceError

NC = 3
GOOD_LABEL = "0 0.5 0.5 0.25 0.25\n"


def _colour_image(width: int = 96, height: int = 64) -> np.ndarray:
    """BGR image: left half red, right half blue (so orientation is visible)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)
    image[:, width // 2 :] = (255, 0, 0)
    return image


def _write(root: Path, name: str, image: np.ndarray | bytes | None, label: str | None) -> Path:
    path = root / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
    elif image is not None:
        assert cv2.imwrite(str(path), image)
    if label is not None:
        label_path = root / "labels" / Path(name).with_suffix(".txt")
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text(label)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    good = _colour_image()
    _write(root, "good.jpg", good, GOOD_LABEL)
    _write(root, "zero.jpg", b"", GOOD_LABEL)
    _ok, encoded = cv2.imencode(".jpg", (np.random.default_rng(0).random((96, 96, 3)) * 255).astype(np.uint8))
    _write(root, "truncated.jpg", encoded.tobytes()[: len(encoded) // 2], GOOD_LABEL)
    _write(root, "notimage.png", b"this is a text file, not a PNG\n" * 20, GOOD_LABEL)
    _write(root, "class.jpg", good, "0 0.5 0.5 0.2 0.2\n3 0.3 0.3 0.1 0.1\n")
    _write(root, "negclass.jpg", good, "-1 0.5 0.5 0.2 0.2\n")
    _write(root, "coords.jpg", good, "1 0.5 0.5 0.2 0.2\n1 1.5 0.5 0.2 0.2\n")
    _write(root, "columns.jpg", good, "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    _write(root, "text.jpg", good, "0 0.5 0.5 0.2 abc\n")
    _write(root, "dupes.jpg", good, "2 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n1 0.2 0.2 0.1 0.1\n2 0.5 0.5 0.2 0.2\n")
    _write(root, "clipped.jpg", good, "1 0.95 0.5 0.2 0.2\n0 0.5 0.5 0.0 0.2\n")
    _write(root, "background.jpg", good, None)
    _write(root, "empty_label.jpg", good, "\n")
    # EXIF orientation 6: stored 96x64, displayed rotated 90 degrees clockwise as 64x96.
    exif_path = root / "images" / "exif.jpg"
    pil = Image.fromarray(good[:, :, ::-1])
    exif = pil.getexif()
    exif[0x0112] = 6
    pil.save(exif_path, exif=exif, quality=95)
    (root / "labels" / "exif.txt").write_text("0 0.5 0.25 0.5 0.5\n")  # top half of the displayed image
    _write(root, "gray.png", np.full((64, 80), 77, np.uint8), GOOD_LABEL)
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # BGR
    rgba[..., 3] = np.arange(80, dtype=np.uint8)[None]  # varying alpha must not change the colour
    _write(root, "rgba.png", rgba, GOOD_LABEL)
    deep = (np.arange(64 * 80, dtype=np.uint32).reshape(64, 80) * 65535 // (64 * 80 - 1)).astype(np.uint16)
    _write(root, "deep16.png", deep, GOOD_LABEL)
    return root


def test_verify_image_reasons(corpus: Path) -> None:
    images = corpus / "images"
    assert verify_image(images / "good.jpg") == ((96, 64), None)
    assert verify_image(images / "zero.jpg")[1] == "empty file (0 bytes)"
    assert "truncated" in verify_image(images / "truncated.jpg")[1]
    assert "not an image" in verify_image(images / "notimage.png")[1]
    assert verify_image(images / "missing.jpg")[1] == "file not found"
    assert verify_image(images / "exif.jpg") == ((64, 96), None)  # displayed size


def test_label_rules(corpus: Path) -> None:
    labels = corpus / "labels"
    check = check_label_file(labels / "class.txt", nc=NC)
    assert check.skip and "line 2: class 3 >= nc=3" in check.problems[0].message
    assert check_label_file(labels / "class.txt", nc=None).skip is False  # no nc: any class accepted
    assert check_label_file(labels / "negclass.txt", nc=NC).skip
    check = check_label_file(labels / "coords.txt", nc=NC)
    assert check.skip and "line 2" in check.problems[0].message and "outside [0, 1]" in check.problems[0].message
    check = check_label_file(labels / "columns.txt", nc=NC)
    assert check.skip and "line 2: 4 columns" in check.problems[0].message
    assert check_label_file(labels / "text.txt", nc=NC).problems[0].kind == "label-not-numeric"

    check = check_label_file(labels / "dupes.txt", nc=NC)
    assert not check.skip and len(check.labels) == 2
    assert check.problems[0].kind == "label-duplicate" and "lines 2, 4" in check.problems[0].message

    check = check_label_file(labels / "clipped.txt", nc=NC)
    assert not check.skip and len(check.labels) == 1
    x, w = check.labels[0, 1], check.labels[0, 3]
    assert x + w / 2 == pytest.approx(1.0) and x - w / 2 == pytest.approx(0.85)
    assert {p.kind for p in check.problems} == {"label-clipped", "label-zero-size"}

    assert check_label_file(labels / "background.txt").status == "missing"
    assert check_label_file(labels / "empty_label.txt").status == "empty"


def test_dataset_skips_reports_and_counts(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = YoloDataset(corpus / "images", imgsz=96, nc=NC, cache_dir=tmp_path)
    out = capsys.readouterr().out
    kept = {Path(p).name for p in dataset.image_files}
    skipped = {
        "zero.jpg",
        "truncated.jpg",
        "notimage.png",
        "class.jpg",
        "negclass.jpg",
        "coords.jpg",
        "columns.jpg",
        "text.jpg",
    }
    assert kept.isdisjoint(skipped)
    assert kept == {
        "good.jpg",
        "dupes.jpg",
        "clipped.jpg",
        "background.jpg",
        "empty_label.jpg",
        "exif.jpg",
        "gray.png",
        "rgba.png",
        "deep16.png",
    }
    bad_images = {"zero.jpg", "truncated.jpg", "notimage.png"}
    bad_labels = {Path(n).with_suffix(".txt").name for n in skipped - bad_images}
    for name in bad_images | bad_labels | {"dupes.txt", "clipped.txt"}:  # each problem names its file
        assert f"/{name}: " in out, name
    counts = dataset.counts
    assert counts["found"] == 17 and counts["usable"] == 9
    assert counts["images_corrupt"] == 3 and counts["labels_corrupt"] == 5
    assert counts["labels_missing"] == 1 and counts["labels_empty"] == 1
    assert counts["fixes"] == 3  # one duplicate report, one clip, one zero-size drop
    assert "17 images: 9 usable" in out and "skipped 3 corrupt images and 5 bad label files" in out
    # Problems are kept on the dataset, each with its file.
    assert {Path(p.file).name for p in dataset.problems if p.action == "skipped"} == bad_images | bad_labels


def test_all_skipped_is_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path, "zero.jpg", b"", GOOD_LABEL)
    with pytest.raises(DatasetSourceError, match="no usable images"):
        YoloDataset(tmp_path / "images", imgsz=64, nc=1)


def test_exif_orientation_applied(corpus: Path) -> None:
    image = read_image(corpus / "images" / "exif.jpg")
    assert image.shape == (96, 64, 3)
    # Rotated 90 degrees clockwise: the stored left (red) half is now on top.
    assert image[10, 32, 2] > 200 and image[10, 32, 0] < 60
    assert image[85, 32, 0] > 200 and image[85, 32, 2] < 60
    dataset = YoloDataset(corpus / "images" / "exif.jpg", imgsz=96, nc=NC)
    assert tuple(dataset.shapes[0]) == (64, 96)  # (w, h) as displayed
    chw, targets, _, _ = dataset[0]
    x, y, w, h = targets[0, 2:].tolist()
    region = chw[
        :, int((y - h / 2) * 96) + 2 : int((y + h / 2) * 96) - 2, int((x - w / 2) * 96) + 2 : int((x + w / 2) * 96) - 2
    ]
    assert (region[0] > 200).all() and (region[2] < 60).all()  # the labelled top half is red (RGB)


def test_grayscale_rgba_16bit(corpus: Path) -> None:
    gray = read_image(corpus / "images" / "gray.png")
    assert gray.shape == (64, 80, 3) and (gray == 77).all()
    rgba = read_image(corpus / "images" / "rgba.png")
    assert rgba.shape == (64, 80, 3) and (rgba == (10, 20, 30)).all()
    deep = read_image(corpus / "images" / "deep16.png")
    raw = cv2.imread(str(corpus / "images" / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and deep.dtype == np.uint8 and deep.shape == (64, 80, 3)
    expected = np.round(raw.astype(np.float64) * 255 / 65535)
    assert np.abs(deep[..., 0].astype(np.float64) - expected).max() <= 0.5
    assert deep.min() == 0 and deep.max() == 255  # full range kept


def test_check_cli_reports_and_fails_on_skips(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "corpus.yaml"
    data.write_text(f"path: {corpus}\nval: images\nnames: [a, b, c]\n")
    assert check_main([str(data), "--cache-dir", str(tmp_path / "cache")]) == 1
    out = capsys.readouterr().out
    assert "val: 17 images: 9 usable" in out and "truncated.jpg: corrupt or truncated image" in out
