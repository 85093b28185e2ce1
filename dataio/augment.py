"""Image augmentations that move boxes with the pixels: random perspective/affine, flips, mixup, HSV jitter.

Images are HWC uint8 BGR (OpenCV's order); labels are (n, 5) float arrays `cls, x1, y1, x2, y2` in pixels of
that image. Every random draw comes from the `np.random.Generator` passed in, never from global state, so a
sample is a function of its generator's seed.
"""

from __future__ import annotations

import cv2
import numpy as np

from utils.letterbox import PAD_COLOR


def affine_matrix(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.0,
    scale: float = 0.0,
    shear: float = 0.0,
    perspective: float = 0.0,
) -> tuple[np.ndarray, float]:
    """A random 3x3 warp from an input image of `in_size` (w, h) to an output of `out_size` (w, h).

    The input centre is moved to the origin, then perspective, rotation+scale, shear are applied about it,
    and it is placed at the output centre shifted by up to `translate` of the output size. Returns the
    matrix and the scale factor drawn (box filters compare areas against it).
    """
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -in_size[0] / 2, -in_size[1] / 2

    warp = np.eye(3)
    warp[2, 0], warp[2, 1] = rng.uniform(-perspective, perspective, 2)

    angle = rng.uniform(-degrees, degrees)
    factor = rng.uniform(1 - scale, 1 + scale)
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=factor)

    skew = np.eye(3)
    skew[0, 1], skew[1, 0] = np.tan(np.radians(rng.uniform(-shear, shear, 2)))

    place = np.eye(3)
    place[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size[0]
    place[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_size[1]
    return place @ skew @ rotate @ warp @ centre, float(factor)


def transform_boxes(boxes: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Warp xyxy boxes by `matrix`: the axis-aligned box around the four warped corners, clipped to out_size
    (w, h). The result encloses every warped pixel of the original box."""
    n = len(boxes)
    if n == 0:
        return boxes.reshape(0, 4).astype(np.float64)
    corners = np.ones((n * 4, 3))
    corners[:, :2] = boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)  # (x1,y1) (x2,y2) (x1,y2) (x2,y1)
    warped = corners @ matrix.T
    warped = warped[:, :2] / warped[:, 2:3]  # identity for affine matrices (last row 0 0 1)
    warped = warped.reshape(n, 4, 2)
    out = np.concatenate((warped.min(1), warped.max(1)), 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, out_size[0])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, out_size[1])
    return out


def box_candidates(
    before: np.ndarray,
    after: np.ndarray,
    scale: float = 1.0,
    min_side: float = 2.0,
    min_area_ratio: float = 0.1,
    max_aspect: float = 20.0,
) -> np.ndarray:
    """Boolean mask of warped boxes worth keeping: sides over `min_side` px, at least `min_area_ratio` of the
    (scaled) original area still in the image, aspect ratio under `max_aspect`."""
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-9
    aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
    area_ratio = (w1 * h1) / (w0 * h0 * scale * scale + eps)
    return (w1 > min_side) & (h1 > min_side) & (area_ratio > min_area_ratio) & (aspect < max_aspect)


def random_perspective(
    image: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
    perspective: float = 0.0,
    border: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Warp an image and its boxes randomly; the output is the input size grown by 2*border (h, w) — a
    negative border crops, as after a mosaic. Boxes mostly pushed out of the image are dropped."""
    out_size = (image.shape[1] + 2 * border[1], image.shape[0] + 2 * border[0])  # (w, h)
    matrix, factor = affine_matrix(
        (image.shape[1], image.shape[0]), out_size, rng, degrees, translate, scale, shear, perspective
    )
    if out_size != (image.shape[1], image.shape[0]) or not np.allclose(matrix, np.eye(3)):
        if perspective:
            image = cv2.warpPerspective(image, matrix, dsize=out_size, borderValue=PAD_COLOR)
        else:
            image = cv2.warpAffine(image, matrix[:2], dsize=out_size, borderValue=PAD_COLOR)
    if len(labels):
        boxes = transform_boxes(labels[:, 1:5], matrix, out_size)
        keep = box_candidates(labels[:, 1:5], boxes, scale=factor)
        labels = np.concatenate((labels[keep, :1], boxes[keep]), 1)
    return image, labels


def augment_hsv(
    image: np.ndarray, rng: np.random.Generator, hue: float = 0.5, saturation: float = 0.5, value: float = 0.5
) -> np.ndarray:
    """Multiply hue, saturation and value by random gains in [1 - g, 1 + g] (hue wraps around)."""
    gains = rng.uniform(-1, 1, 3) * (hue, saturation, value) + 1
    if not (hue or saturation or value):
        return image
    h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    levels = np.arange(256, dtype=np.float32)
    lut_h = ((levels * gains[0]) % 180).astype(np.uint8)  # OpenCV hue is 0..179
    lut_s = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def flip_lr(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right."""
    width = image.shape[1]
    labels = labels.copy()
    labels[:, [1, 3]] = width - labels[:, [3, 1]]
    return np.ascontiguousarray(image[:, ::-1]), labels


def flip_ud(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom."""
    height = image.shape[0]
    labels = labels.copy()
    labels[:, [2, 4]] = height - labels[:, [4, 2]]
    return np.ascontiguousarray(image[::-1]), labels


def mixup(
    image: np.ndarray,
    labels: np.ndarray,
    other: np.ndarray,
    other_labels: np.ndarray,
    rng: np.random.Generator,
    alpha: float = 32.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend two same-size images with a Beta(alpha, alpha) weight (near 0.5) and keep the boxes of both."""
    weight = rng.beta(alpha, alpha)
    blended = image.astype(np.float32) * weight + other.astype(np.float32) * (1 - weight)
    return np.round(blended).astype(np.uint8), np.concatenate((labels, other_labels), 0)


def mosaic4(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    size: int,
    centre: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Four images around `centre` (x, y) on a (2*size)^2 canvas: the first has its bottom-right corner at the
    centre, then top-right, bottom-left, bottom-right. Parts falling off the canvas are cut; boxes are moved
    with their images and clipped to the canvas (empty ones are left for the warp's filter)."""
    canvas_size = 2 * size
    canvas = filled((canvas_size, canvas_size, 3), PAD_COLOR)
    xc, yc = centre
    placed = []
    for k, (image, lab) in enumerate(zip(images, labels)):
        h, w = image.shape[:2]
        x0 = xc - w if k in (0, 2) else xc  # canvas position of the image's top-left corner
        y0 = yc - h if k in (0, 1) else yc
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + w, canvas_size), min(y0 + h, canvas_size)
        if cx2 > cx1 and cy2 > cy1:
            canvas[cy1:cy2, cx1:cx2] = image[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        moved = lab.copy()
        moved[:, [1, 3]] += x0
        moved[:, [2, 4]] += y0
        placed.append(moved)
    out = np.concatenate(placed, 0) if placed else np.zeros((0, 5))
    out[:, 1:5] = out[:, 1:5].clip(0, canvas_size)
    return canvas, out


def filled(shape: tuple[int, int, int], colour: tuple[int, int, int]) -> np.ndarray:
    """A uint8 image of one colour. (np.full with a per-channel tuple is ~100x slower than with a scalar.)"""
    if len(set(colour)) == 1:
        return np.full(shape, colour[0], dtype=np.uint8)
    image = np.empty(shape, dtype=np.uint8)
    for channel, value in enumerate(colour):
        image[..., channel] = value
    return image


def random_mosaic_centre(size: int, rng: np.random.Generator) -> tuple[int, int]:
    """Mosaic centre drawn uniformly from the middle half of the (2*size)^2 canvas."""
    x, y = rng.uniform(size / 2, 3 * size / 2, 2)
    return int(x), int(y)
