"""A tiny, learnable YOLO dataset for tests: filled rectangles of one distinct colour per class on a noisy grey
background, with exact labels and a data YAML.

    from tests.synthetic_data import make_synthetic_dataset
    data_yaml = make_synthetic_dataset(tmp_path, n_train=16, n_val=8, imgsz=128, nc=3)

Rectangles do not overlap and are 20-45 % of the image side, so a small model can overfit them quickly
(`val_is_train=True` points val at the training images for overfit checks).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

# RGB, far apart from each other and from the grey background.
CLASS_COLOURS = [
    (230, 30, 30),
    (30, 200, 30),
    (30, 60, 230),
    (240, 220, 20),
    (220, 30, 220),
    (20, 220, 220),
    (250, 140, 0),
    (120, 0, 180),
]


def draw_synthetic_image(
    rng: np.random.Generator,
    width: int,
    height: int,
    nc: int,
    objects: tuple[int, int] = (1, 3),
    noise: float = 8.0,
) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image and its (n, 5) labels `cls x y w h` normalised; classes from CLASS_COLOURS[:nc]."""
    if not 1 <= nc <= len(CLASS_COLOURS):
        raise ValueError(f"nc must be in 1..{len(CLASS_COLOURS)}, got {nc}")
    base = rng.integers(90, 160)
    image = np.full((height, width, 3), base, dtype=np.float32)
    if noise:
        image += rng.normal(0, noise, image.shape)
    image = image.clip(0, 255).astype(np.uint8)
    boxes: list[tuple[int, int, int, int, int]] = []
    wanted = int(rng.integers(objects[0], objects[1] + 1))
    for _ in range(50 * wanted):  # rejection sampling for non-overlapping boxes
        if len(boxes) == wanted:
            break
        bw = int(rng.uniform(0.2, 0.45) * width)
        bh = int(rng.uniform(0.2, 0.45) * height)
        x1, y1 = int(rng.integers(0, width - bw)), int(rng.integers(0, height - bh))
        x2, y2 = x1 + bw, y1 + bh
        if any(x1 < b[3] + 2 and b[1] < x2 + 2 and y1 < b[4] + 2 and b[2] < y2 + 2 for b in boxes):
            continue
        cls = int(rng.integers(0, nc))
        image[y1:y2, x1:x2] = CLASS_COLOURS[cls]
        boxes.append((cls, x1, y1, x2, y2))
    labels = np.array(
        [
            [c, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
            for c, x1, y1, x2, y2 in boxes
        ],
        dtype=np.float64,
    ).reshape(-1, 5)
    return image, labels


def write_label_file(path: Path, labels: np.ndarray) -> None:
    """YOLO label rows `cls x y w h`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in labels))


def make_synthetic_dataset(
    root: str | Path,
    n_train: int = 16,
    n_val: int = 8,
    imgsz: int = 128,
    nc: int = 3,
    seed: int = 0,
    noise: float = 8.0,
    objects: tuple[int, int] = (1, 3),
    val_is_train: bool = False,
    aspect_ratios: tuple[float, ...] = (1.0,),
) -> Path:
    """Write images/{train,val} (PNG), labels/{train,val} and data.yaml under `root`; return the YAML path.

    `aspect_ratios` (width / height) cycle over the images, e.g. (1.0, 1.5, 0.75) for rect-batch tests.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    splits = {"train": n_train} if val_is_train else {"train": n_train, "val": n_val}
    for split, count in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        for k in range(count):
            aspect = aspect_ratios[k % len(aspect_ratios)]
            width, height = (imgsz, round(imgsz / aspect)) if aspect >= 1 else (round(imgsz * aspect), imgsz)
            image, labels = draw_synthetic_image(rng, width, height, nc, objects, noise)
            cv2.imwrite(str(root / "images" / split / f"{split}_{k:03d}.png"), image[:, :, ::-1])
            write_label_file(root / "labels" / split / f"{split}_{k:03d}.txt", labels)
    config = {
        "path": str(root.resolve()),
        "train": "images/train",
        "val": "images/train" if val_is_train else "images/val",
        "names": {i: f"class{i}" for i in range(nc)},
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return data_yaml
