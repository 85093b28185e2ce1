"""Issue 14: a property-based corpus of broken and unusual label and image files through the checker and the loader.

Hypothesis draws data sets of image/label pairs, each file of a kind whose verdict is known in advance (a bad
kind is unusable whatever the drawn details; a good kind is usable however odd). Every data set is scanned,
scanned again from its label cache, checked by `python -m dataio.check`, and loaded item by item for evaluation
and for training (mosaic). Asserted: no exception; the skipped files are exactly the bad ones, each named in a
problem; the summary counts equal the numbers of bad images and bad label files generated; every item loads
with finite targets inside the image. Reproducible (derandomized, no example database); a failing case prints
the manifest of the files it generated (`note`).
"""

from __future__ import annotations

import io
import shutil
import struct
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image

from dataio.check import check_dataset
from dataio.dataset import YoloDataset
from dataio.loader import build_dataloader

NC = 3
EXAMPLES = 30  # data sets per run, 7-13 pairs each: about 300 images and 280 label files (>= 200 each asserted)
IMGSZ = 64


# -- labels ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelSpec:
    """A label file: its bytes (None: no file; a directory where the file should be: `directory`), and whether
    the checker must skip its image."""

    kind: str
    content: bytes | None
    bad: bool
    directory: bool = False


_unit = st.floats(0.0, 1.0, allow_nan=False)
_size = st.floats(0.0, 1.0, allow_nan=False)
_separator = st.sampled_from([" ", "\t", "  ", " \t "])


def _number(value: float, style: int) -> str:
    return (f"{value}", f"{value:.6f}", f"{value:e}", f"{value:.3g}")[style]


@st.composite
def good_row(draw: st.DrawFn) -> str:
    """A valid row; its box may stick out of the image (clipped) or have no area (dropped): fixed, not fatal."""
    cls = draw(st.integers(0, NC - 1))
    cls_text = draw(st.sampled_from([str(cls), f"{cls}.0", f"{cls}e0"]))
    values = [draw(_unit), draw(_unit), draw(_size), draw(_size)]
    style = draw(st.integers(0, 3))
    return draw(_separator).join([cls_text] + [_number(v, style) for v in values])


@st.composite
def fatal_row(draw: st.DrawFn) -> tuple[str, str]:
    """(row, kind) for a row that makes the whole file unusable."""
    fields = [str(draw(st.integers(0, NC - 1)))] + [f"{draw(_unit):.4f}" for _ in range(4)]
    kind = draw(
        st.sampled_from(
            ["columns", "not-numeric", "not-finite", "negative-class", "fraction-class", "class>=nc", "coords", "huge"]
        )
    )
    column = draw(st.integers(1, 4))
    if kind == "columns":
        count = draw(st.sampled_from([1, 2, 3, 4, 6, 7, 9]))
        fields = (fields * 2)[:count]
    elif kind == "not-numeric":
        fields[draw(st.integers(0, 4))] = draw(st.sampled_from(["abc", "0,5", "1/2", "--1", "None", "0.5.1", "0x1a"]))
    elif kind == "not-finite":
        fields[draw(st.integers(0, 4))] = draw(st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400"]))
    elif kind == "negative-class":
        fields[0] = str(draw(st.integers(-1000, -1)))
    elif kind == "fraction-class":
        fields[0] = draw(st.sampled_from(["0.5", "1.25", "2.001"]))
    elif kind == "class>=nc":
        fields[0] = str(draw(st.integers(NC, 10**12)))
    elif kind == "coords":
        fields[column] = f"{draw(st.one_of(st.floats(1.001, 1e6), st.floats(-1e6, -0.001))):.6g}"
    else:  # huge numbers: out of range, or overflowing to inf
        fields[column] = draw(st.sampled_from(["1e30", "-1e300", "9" * 40, "1" + "0" * 400]))
    return draw(_separator).join(fields), kind


@st.composite
def label_files(draw: st.DrawFn) -> LabelSpec:
    shape = draw(
        st.sampled_from(["good", "fatal", "missing", "empty", "blank-lines", "garbage", "directory", "duplicates"])
    )
    if shape == "missing":
        return LabelSpec("missing (background)", None, False)
    if shape == "directory":
        return LabelSpec("a directory, not a file", None, True, directory=True)
    if shape == "empty":
        return LabelSpec("empty (background)", b"", False)
    if shape == "blank-lines":
        return LabelSpec(
            "only blank lines (background)", draw(st.sampled_from([b"\n", b"\r\n\r\n", b"  \n\t\n"])), False
        )
    if shape == "garbage":  # 0xFF never occurs in UTF-8: unreadable whatever the rest
        noise = draw(st.binary(min_size=0, max_size=64))
        return LabelSpec("binary garbage", noise[:8] + b"\xff" + noise[8:], True)
    rows = draw(st.lists(good_row(), min_size=1, max_size=6))
    kind, bad = "good rows", False
    if shape == "duplicates":
        rows = rows + [rows[0]] * draw(st.integers(1, 3))
        kind = "duplicate rows"
    if shape == "fatal":
        row, fatal_kind = draw(fatal_row())
        rows.insert(draw(st.integers(0, len(rows))), row)
        kind, bad = f"fatal row: {fatal_kind}", True
    blank = draw(st.integers(0, 2))
    rows = [""] * blank + rows  # empty lines are ignored
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(rows) + draw(st.sampled_from(["", newline]))
    bom = draw(st.booleans())
    return LabelSpec(kind + (", BOM" if bom else ""), (b"\xef\xbb\xbf" if bom else b"") + text.encode(), bad)


# -- images ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSpec:
    """An image file: kind, suffix, pixel size (w, h) as stored, a seed for its pixels, a parameter of the kind
    (truncation point, EXIF orientation, foreign format), and whether the checker must refuse it."""

    kind: str
    suffix: str
    size: tuple[int, int]
    seed: int
    parameter: float | int | str = 0

    @property
    def bad(self) -> bool:
        return self.kind in BAD_IMAGE_KINDS

    def displayed_size(self) -> tuple[int, int]:
        w, h = self.size
        return (h, w) if self.kind == "exif-rotated" and int(self.parameter) >= 5 else (w, h)


GOOD_IMAGE_KINDS = (
    "png",
    "jpg",
    "bmp",
    "tiff",
    "webp",
    "gray",
    "rgba",
    "gray-alpha",
    "16-bit",
    "16-bit-gray",
    "palette",
    "cmyk-jpg",
    "progressive-jpg",
    "exif-rotated",
    "png-named-jpg",
)
BAD_IMAGE_KINDS = (
    "zero-bytes",
    "truncated-jpg",
    "truncated-png",
    "foreign-format",
    "huge-dims-header",
    "too-small",
    "garbage",
)
_SUFFIX = {"jpg": ".jpg", "bmp": ".bmp", "tiff": ".tif", "webp": ".webp", "cmyk-jpg": ".jpeg"}
_SUFFIX.update({k: ".jpg" for k in ("progressive-jpg", "exif-rotated", "png-named-jpg", "truncated-jpg")})


@st.composite
def image_specs(draw: st.DrawFn) -> ImageSpec:
    kind = draw(st.sampled_from(GOOD_IMAGE_KINDS + BAD_IMAGE_KINDS))
    size = (draw(st.integers(2, 40)), draw(st.integers(2, 40)))
    parameter: float | int | str = 0
    suffix = _SUFFIX.get(kind, ".png")
    if kind == "too-small":
        side = draw(st.integers(1, 40))
        size = draw(st.sampled_from([(1, side), (side, 1)]))
    elif kind in ("truncated-jpg", "truncated-png"):
        parameter = draw(st.floats(0.02, 0.999))
    elif kind == "exif-rotated":
        parameter = draw(st.integers(1, 8))
    elif kind == "foreign-format":
        parameter = draw(st.sampled_from(["ICO", "PCX", "TGA", "SGI", "IM"]))
        suffix = draw(st.sampled_from([".jpg", ".png", ".bmp"]))
    elif kind == "huge-dims-header":  # more pixels than the decoder's limit (2**30)
        size = (draw(st.integers(40_000, 2**31 - 1)), draw(st.integers(40_000, 2**31 - 1)))
    elif kind in ("zero-bytes", "garbage"):
        suffix = draw(st.sampled_from([".jpg", ".png", ".webp", ".tif"]))
    return ImageSpec(kind, suffix, size, draw(st.integers(0, 2**16)), parameter)


def _pil_bytes(image: Image.Image, image_format: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **kwargs)
    return buffer.getvalue()


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def image_bytes(spec: ImageSpec) -> bytes:
    """The file content of `spec`."""
    rng = np.random.default_rng(spec.seed)
    w, h = spec.size
    if spec.kind == "huge-dims-header":
        header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")
    if spec.kind == "zero-bytes":
        return b""
    if spec.kind == "garbage":  # a leading NUL matches no image signature
        return b"\x00garbage" + rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
    bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb = Image.fromarray(bgr[:, :, ::-1].copy())
    encoders = {
        "png": lambda: cv2.imencode(".png", bgr)[1].tobytes(),
        "jpg": lambda: cv2.imencode(".jpg", bgr)[1].tobytes(),
        "bmp": lambda: cv2.imencode(".bmp", bgr)[1].tobytes(),
        "tiff": lambda: cv2.imencode(".tiff", bgr)[1].tobytes(),
        "webp": lambda: cv2.imencode(".webp", bgr)[1].tobytes(),
        "gray": lambda: cv2.imencode(".png", bgr[:, :, 0])[1].tobytes(),
        "rgba": lambda: cv2.imencode(".png", np.dstack([bgr, bgr[:, :, :1]]))[1].tobytes(),
        "gray-alpha": lambda: _pil_bytes(rgb.convert("LA"), "PNG"),
        "16-bit": lambda: cv2.imencode(".png", bgr.astype(np.uint16) * 257)[1].tobytes(),
        "16-bit-gray": lambda: cv2.imencode(".png", bgr[:, :, 0].astype(np.uint16) * 257)[1].tobytes(),
        "palette": lambda: _pil_bytes(rgb.convert("P"), "PNG"),
        "cmyk-jpg": lambda: _pil_bytes(rgb.convert("CMYK"), "JPEG"),
        "progressive-jpg": lambda: _pil_bytes(rgb, "JPEG", progressive=True),
        "png-named-jpg": lambda: cv2.imencode(".png", bgr)[1].tobytes(),
        "too-small": lambda: cv2.imencode(".png", bgr)[1].tobytes(),
    }
    if spec.kind in encoders:
        return encoders[spec.kind]()
    if spec.kind == "exif-rotated":
        exif = rgb.getexif()
        exif[0x0112] = int(spec.parameter)
        return _pil_bytes(rgb, "JPEG", exif=exif)
    if spec.kind == "foreign-format":
        return _pil_bytes(rgb, str(spec.parameter))
    whole = cv2.imencode(".jpg" if spec.kind == "truncated-jpg" else ".png", bgr)[1].tobytes()
    return whole[: min(len(whole) - 1, max(1, int(len(whole) * float(spec.parameter))))]


# -- the property ---------------------------------------------------------------------------------------------
def _write_corpus(
    root: Path, pairs: list[tuple[ImageSpec, LabelSpec]]
) -> list[tuple[Path, Path, ImageSpec, LabelSpec]]:
    written = []
    for index, (image, label) in enumerate(pairs):
        stem = f"{index:02d}_{image.kind}"
        image_path = root / "images" / f"{stem}{image.suffix}"
        label_path = root / "labels" / f"{stem}.txt"
        image_path.write_bytes(image_bytes(image))
        if label.directory:
            label_path.mkdir()
        elif label.content is not None:
            label_path.write_bytes(label.content)
        written.append((image_path, label_path, image, label))
    return written


def _manifest(written: list[tuple[Path, Path, ImageSpec, LabelSpec]]) -> str:
    lines = []
    for image_path, _, image, label in written:
        verdict = "bad image" if image.bad else ("bad label" if label.bad else "usable")
        lines.append(f"  {image_path.name}: {image} | label {label.kind} {label.content!r} -> {verdict}")
    return "\n".join(lines)


def _check_items(dataset: YoloDataset, expected_sizes: dict[str, tuple[int, int]]) -> None:
    for path, (w, h) in zip(dataset.image_files, dataset.shapes):
        assert (int(w), int(h)) == expected_sizes[path], path
    loader = build_dataloader(dataset, batch_size=4, workers=0, shuffle=False)
    loader.set_epoch(1)
    seen = 0
    for images, targets, paths, _ in loader:
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, IMGSZ, IMGSZ)
        assert torch.isfinite(targets).all() and (targets[:, 2:] >= 0).all() and (targets[:, 2:] <= 1).all()
        assert ((targets[:, 1] >= 0) & (targets[:, 1] < NC)).all()
        seen += len(paths)
    assert seen == len(dataset)


def test_generated_bad_data_is_named_counted_and_never_crashes(capsys) -> None:
    generated: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        pairs=st.lists(st.tuples(image_specs(), label_files()), min_size=6, max_size=12),
        good_last=st.tuples(st.sampled_from(["png", "jpg"]), label_files().filter(lambda spec: not spec.bad)),
    )
    def check(pairs: list[tuple[ImageSpec, LabelSpec]], good_last: tuple[str, LabelSpec]) -> None:
        # One usable pair always, so that the dataset exists and its items can be loaded.
        pairs = pairs + [(ImageSpec(good_last[0], _SUFFIX.get(good_last[0], ".png"), (24, 16), 0), good_last[1])]
        root = Path(tempfile.mkdtemp(prefix="corpus-"))
        try:
            (root / "images").mkdir()
            (root / "labels").mkdir()
            written = _write_corpus(root, pairs)
            note("generated files:\n" + _manifest(written))
            generated["images"] += len(written)
            generated["labels"] += sum(label.content is not None or label.directory for _, _, _, label in written)

            bad_images = {str(p) for p, _, image, _ in written if image.bad}
            bad_labels = {str(lp) for p, lp, image, label in written if not image.bad and label.bad}
            expected_sizes = {str(p): image.displayed_size() for p, _, image, _ in written if not image.bad}
            capsys.readouterr()
            dataset = YoloDataset(root / "images", imgsz=IMGSZ, nc=NC, cache_dir=root / "cache")
            out = capsys.readouterr().out
            skipped = {p.file for p in dataset.problems if p.action == "skipped"}
            assert skipped == bad_images | bad_labels
            for name in skipped:
                assert f"{name}: " in out
            counts = dataset.counts
            assert counts["images_corrupt"] == len(bad_images) and counts["labels_corrupt"] == len(bad_labels)
            assert counts["usable"] == len(written) - len(bad_images) - len(bad_labels) == len(dataset)
            assert f"skipped {len(bad_images)} corrupt images and {len(bad_labels)} bad label files" in out
            _check_items(dataset, expected_sizes)

            # From the label cache: the same verdicts; and loaded for training, with mosaic.
            training = YoloDataset(root / "images", imgsz=IMGSZ, augment=True, nc=NC, cache_dir=root / "cache")
            assert "matches the files" in capsys.readouterr().out
            assert training.counts == counts and training.image_files == dataset.image_files
            _check_items(training, expected_sizes)

            data_yaml = root / "data.yaml"
            data_yaml.write_text(f"path: {root}\nval: images\nnames: [a, b, c]\n")
            assert check_dataset(str(data_yaml), cache_dir=str(root / "cache")) == int(bool(skipped))
            generated["bad"] += len(bad_images) + len(bad_labels)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    check()
    with capsys.disabled():
        print(
            f"\ncorpus: {generated['images']} images and {generated['labels']} label files in {EXAMPLES} data sets, "
            f"{generated['bad']} of the pairs unusable"
        )
    assert generated["images"] >= 200 and generated["labels"] >= 200
    assert generated["bad"] >= 50  # the corpus is mostly broken, not mostly fine
