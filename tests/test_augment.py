"""Augmentation geometry, checked against the pixels the transforms move: filled rectangles of distinct
colours are painted, transformed, and the transformed boxes must enclose (and, without rotation, fit) them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dataio.augment import affine_matrix, augment_hsv, flip_lr, flip_ud, mixup, mosaic4, random_perspective
from dataio.dataset import YoloDataset
from tests.synthetic_data import CLASS_COLOURS, make_synthetic_dataset

COLOURS_BGR = [tuple(reversed(c)) for c in CLASS_COLOURS]


def _painted(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Grey image with box k filled in colour k; labels (n, 5) `k x1 y1 x2 y2` (pixel edges)."""
    image = np.full((height, width, 3), 100, np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        image[y1:y2, x1:x2] = COLOURS_BGR[k]
    return image, np.array([[k, *b] for k, b in enumerate(boxes)], dtype=np.float64)


def _colour_mask(image: np.ndarray, k: int, tolerance: int = 12) -> np.ndarray:
    return np.abs(image.astype(int) - COLOURS_BGR[k]).max(-1) <= tolerance


def _pixel_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


BOXES = [(10, 12, 50, 40), (70, 20, 140, 60), (30, 70, 90, 120), (100, 80, 150, 118)]


@pytest.mark.parametrize("seed", range(6))
def test_perspective_boxes_enclose_moved_pixels(seed: int) -> None:
    image, labels = _painted(160, 128, BOXES)
    rng = np.random.default_rng(seed)
    out, moved = random_perspective(
        image, labels, rng, degrees=30, translate=0.2, scale=0.4, shear=10, perspective=0.0005
    )
    assert out.shape == image.shape
    assert len(moved) > 0
    for k, x1, y1, x2, y2 in moved:
        mask = _colour_mask(out, int(k))
        assert mask.any()
        px1, py1, px2, py2 = _pixel_box(mask)
        # Every pixel of that colour (interior pixels survive interpolation exactly) lies inside the box.
        assert px1 >= x1 - 1 and py1 >= y1 - 1 and px2 <= x2 + 1 and py2 <= y2 + 1, (
            k,
            (px1, py1, px2, py2),
            (x1, y1, x2, y2),
        )


@pytest.mark.parametrize("seed", range(4))
def test_scale_translate_boxes_fit_moved_pixels(seed: int) -> None:
    """Without rotation or shear the box is the moved rectangle itself, to within a pixel."""
    image, labels = _painted(160, 128, BOXES)
    out, moved = random_perspective(image, labels, np.random.default_rng(seed), translate=0.2, scale=0.5)
    assert len(moved) > 0
    for k, x1, y1, x2, y2 in moved:  # boxes cut by the border are clipped like their pixels
        px1, py1, px2, py2 = _pixel_box(_colour_mask(out, int(k), tolerance=40))
        assert abs(px1 - x1) <= 1.5 and abs(py1 - y1) <= 1.5 and abs(px2 - x2) <= 1.5 and abs(py2 - y2) <= 1.5


def test_border_crops_and_drops_boxes_pushed_out() -> None:
    image, labels = _painted(160, 128, BOXES)
    out, moved = random_perspective(
        image, labels, np.random.default_rng(0), translate=0.0, scale=0.0, border=(-32, -40)
    )
    assert out.shape == (64, 80, 3)  # a crop of the centre
    # Identity warp about the centre: the output shows input pixels (40..120, 32..96).
    assert np.array_equal(out, image[32:96, 40:120])
    kept = {int(k) for k in moved[:, 0]}
    assert 0 not in kept  # box 0 (10..50, 12..40) keeps 10x8 px of 40x28: under a tenth, dropped
    for k, x1, y1, x2, y2 in moved:
        ox1, oy1, ox2, oy2 = BOXES[int(k)]
        assert (x1, y1) == (max(ox1 - 40, 0), max(oy1 - 32, 0)) and (x2, y2) == (min(ox2 - 40, 80), min(oy2 - 32, 64))


def test_affine_matrix_identity_when_no_jitter() -> None:
    matrix, factor = affine_matrix((160, 128), (160, 128), np.random.default_rng(0))
    assert np.allclose(matrix, np.eye(3)) and factor == 1.0


def test_flips_move_boxes_with_pixels() -> None:
    image, labels = _painted(160, 128, BOXES)
    for flip in (flip_lr, flip_ud):
        out, moved = flip(image, labels)
        for k, x1, y1, x2, y2 in moved:
            assert _pixel_box(_colour_mask(out, int(k))) == (x1, y1, x2, y2)
        twice, back = flip(*flip(image, labels))
        assert np.array_equal(twice, image) and np.array_equal(back, labels)


def test_mosaic_places_images_around_centre() -> None:
    size = 64
    images, labels = [], []
    for k in range(4):
        image, lab = _painted(64, 48, [(8, 8, 40, 30)])
        image[8:30, 8:40] = COLOURS_BGR[k]  # one colour per quadrant image
        lab[:, 0] = k
        images.append(image)
        labels.append(lab)
    canvas, placed = mosaic4(images, labels, size, centre=(70, 60))
    assert canvas.shape == (128, 128, 3)
    assert len(placed) == 4
    for k, x1, y1, x2, y2 in placed:
        assert _pixel_box(_colour_mask(canvas, int(k))) == (x1, y1, x2, y2)
    # First image's bottom-right corner sits at the centre; the last's top-left corner does.
    assert np.array_equal(canvas[60 - 48 : 60, 70 - 64 : 70], images[0])
    assert np.array_equal(canvas[60 : 60 + 48, 70:], images[3][:, : 128 - 70])  # cut at the edge


def test_mosaic_cut_at_canvas_edge() -> None:
    image, lab = _painted(64, 48, [(2, 2, 20, 20)])
    canvas, placed = mosaic4([image] * 4, [lab] * 4, 32, centre=(40, 30))  # first image sticks out top-left
    assert canvas.shape == (64, 64, 3)
    assert np.array_equal(canvas[:30, :40], image[48 - 30 :, 64 - 40 :])
    assert (placed[:, 1:] >= 0).all() and (placed[:, 1:] <= 64).all()


def test_hsv_keeps_geometry_and_varies_colour() -> None:
    image, _ = _painted(160, 128, BOXES)
    out = augment_hsv(image, np.random.default_rng(1), 0.015, 0.7, 0.4)
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    assert np.array_equal(augment_hsv(image, np.random.default_rng(1), 0.0, 0.0, 0.0), image)


def test_mixup_blends_and_keeps_all_boxes() -> None:
    a, la = _painted(64, 64, [(0, 0, 10, 10)])
    b, lb = _painted(64, 64, [(20, 20, 40, 40), (50, 50, 60, 60)])
    out, labels = mixup(a, la, b, lb, np.random.default_rng(0))
    assert len(labels) == 3
    assert out.min() >= min(a.min(), b.min()) and out.max() <= max(a.max(), b.max())


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aug")
    make_synthetic_dataset(root, n_train=8, n_val=1, imgsz=128, nc=4, noise=4.0, aspect_ratios=(1.0, 1.4, 0.8))
    return root / "images" / "train"


@pytest.mark.parametrize("mosaic", [1.0, 0.0])
def test_dataset_augmented_targets_match_pixels(synthetic: Path, tmp_path: Path, mosaic: float) -> None:
    """Whole pipeline (mosaic or letterbox, warp, flips) with colour jitter off: each target box holds its
    class colour, and each sizeable patch of a class colour is inside a target of that class."""
    hyp = {
        "hsv_h": 0,
        "hsv_s": 0,
        "hsv_v": 0,
        "degrees": 15,
        "shear": 5,
        "translate": 0.1,
        "scale": 0.4,
        "fliplr": 0.5,
        "flipud": 0.5,
        "mosaic": mosaic,
        "mixup": 0.0,
    }
    dataset = YoloDataset(synthetic, imgsz=128, augment=True, hyp=hyp, nc=4, cache_dir=tmp_path)
    for index in range(len(dataset)):
        chw, targets, _, _ = dataset[index]
        image = np.ascontiguousarray(chw.numpy().transpose(1, 2, 0)[:, :, ::-1])  # RGB CHW -> BGR HWC
        h, w = image.shape[:2]
        boxes = targets[:, 2:].numpy() * [w, h, w, h]
        xyxy = np.concatenate((boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2), 1)
        for cls, (x1, y1, x2, y2) in zip(targets[:, 1].int().tolist(), xyxy):
            inner = _colour_mask(image, cls, 30)[int(y1) + 1 : int(np.ceil(y2)) - 1, int(x1) + 1 : int(np.ceil(x2)) - 1]
            assert inner.size == 0 or inner.mean() > 0.3, (index, cls)
        for cls in range(4):
            count, components, stats, _ = cv2.connectedComponentsWithStats(
                _colour_mask(image, cls, 30).astype(np.uint8)
            )
            for c in range(1, count):
                if stats[c, cv2.CC_STAT_AREA] < 1000:
                    continue  # small slivers may belong to boxes dropped for being mostly cut off
                ys, xs = np.nonzero(components == c)
                inside = np.zeros(len(xs), bool)
                for k in np.flatnonzero(targets[:, 1].numpy() == cls):
                    x1, y1, x2, y2 = xyxy[k]
                    inside |= (xs >= x1 - 1) & (xs <= x2 + 1) & (ys >= y1 - 1) & (ys <= y2 + 1)
                assert inside.mean() > 0.99, (index, cls, inside.mean())
