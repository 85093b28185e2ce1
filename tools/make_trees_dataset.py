"""Convert the NEON tree-crown images bundled in the deepforest 2.1.0 wheel to the YOLO format under data/trees.

Not run in CI: the converted images and labels are committed. To rebuild them:

    pip download --no-deps deepforest==2.1.0 -d /tmp/df
    unzip -q /tmp/df/deepforest-2.1.0-py3-none-any.whl -d /tmp/df/wheel
    python tools/make_trees_dataset.py /tmp/df/wheel

The split is by source image, never by tile, so no pixel of a validation image is seen in training:
train = the two YELL crops cut into 416 px tiles with 50 % overlap (a last row/column of tiles flush with the
right/bottom edge covers the remainder), a box kept in a tile when at least half of its area is visible there
and clipped to the tile; val = OSBS_029 and SOAP_061 whole. The Alive/Dead classes of SOAP_061 become "tree".
The deepforest package itself is never imported: only its Pascal VOC XML files and PNG images are read.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN_SOURCES = ("2019_YELL_2_528000_4978000_image_crop2", "2019_YELL_2_541000_4977000_image_crop")
VAL_SOURCES = ("OSBS_029", "SOAP_061")


def read_voc_boxes(xml_path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Pascal VOC boxes as a float (n, 4) xyxy pixel array, and the image (width, height) the file states."""
    root = ET.parse(xml_path).getroot()
    size = root.find("size")
    width, height = int(size.findtext("width")), int(size.findtext("height"))
    boxes = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        boxes.append([float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), (width, height)


def window_offsets(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of sliding windows covering `length`: a fixed step, plus one window flush with the end."""
    window = min(window, length)
    step = window - int(window * overlap)
    offsets = list(range(0, length - window + 1, step))
    if offsets[-1] != length - window:
        offsets.append(length - window)
    return offsets


def boxes_in_window(boxes: np.ndarray, x0: int, y0: int, size: tuple[int, int], min_visible: float) -> np.ndarray:
    """Boxes (xyxy, image pixels) at least `min_visible` visible in the window, clipped, in window pixels."""
    w, h = size
    clipped = boxes - [x0, y0, x0, y0]
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, w)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, h)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    return clipped[visible >= min_visible * area]


def yolo_lines(boxes: np.ndarray, size: tuple[int, int]) -> str:
    """`0 x y w h` rows (class 0, coordinates normalised to the image `size` = (w, h))."""
    w, h = size
    rows = []
    for x1, y1, x2, y2 in boxes:
        rows.append(f"0 {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "\n".join(rows) + ("\n" if rows else "")


def load_source(data_dir: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """A source image (BGR) and its boxes (xyxy pixels, clipped to the image, empty ones dropped)."""
    image = cv2.imread(str(data_dir / f"{stem}.png"), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{data_dir / (stem + '.png')}: missing or unreadable")
    boxes, (w, h) = read_voc_boxes(data_dir / f"{stem}.xml")
    if (w, h) != (image.shape[1], image.shape[0]):
        raise ValueError(f"{stem}: XML size {(w, h)} != image size {image.shape[1::-1]}")
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return image, boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def write_split(out: Path, split: str, items: list[tuple[str, np.ndarray, np.ndarray]], quality: int) -> None:
    """Write each (name, image, boxes) as images/<split>/<name>.jpg and labels/<split>/<name>.txt under `out`."""
    (out / "images" / split).mkdir(parents=True)
    (out / "labels" / split).mkdir(parents=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    for name, image, boxes in items:
        if not cv2.imwrite(str(out / "images" / split / f"{name}.jpg"), image, params):
            raise OSError(f"could not write {name}.jpg")
        size = (image.shape[1], image.shape[0])
        (out / "labels" / split / f"{name}.txt").write_text(yolo_lines(boxes, size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel_dir", type=Path, help="the unzipped deepforest-2.1.0 wheel (holds deepforest/data)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "trees")
    parser.add_argument("--tile", type=int, default=416)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--min-visible", type=float, default=0.5, help="fraction of a box's area inside a tile")
    parser.add_argument("--quality", type=int, default=75, help="JPEG quality")
    args = parser.parse_args(argv)

    data_dir = args.wheel_dir / "deepforest" / "data"
    if not data_dir.is_dir():
        parser.error(f"{data_dir} not found: pass the directory the wheel was unzipped into")

    train = []
    for stem in TRAIN_SOURCES:
        image, boxes = load_source(data_dir, stem)
        h, w = image.shape[:2]
        for y0 in window_offsets(h, args.tile, args.overlap):
            for x0 in window_offsets(w, args.tile, args.overlap):
                tile = image[y0 : y0 + args.tile, x0 : x0 + args.tile]
                kept = boxes_in_window(boxes, x0, y0, (tile.shape[1], tile.shape[0]), args.min_visible)
                train.append((f"{stem}_{x0}_{y0}", tile, kept))
    val = [(stem, *load_source(data_dir, stem)) for stem in VAL_SOURCES]

    for sub in ("images", "labels"):
        shutil.rmtree(args.out / sub, ignore_errors=True)
    write_split(args.out, "train", train, args.quality)
    write_split(args.out, "val", val, args.quality)

    for split, items in (("train", train), ("val", val)):
        n_boxes = sum(len(b) for _, _, b in items)
        empty = sum(len(b) == 0 for _, _, b in items)
        print(f"{split}: {len(items)} images ({empty} without boxes), {n_boxes} boxes")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
