"""Seeded synthetic detection cases (ground truth + predictions) for the metric and COCO parity tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """Per image: (width, height), labels (m, 5) cls xc yc w h normalised, predictions (n, 6) xyxy conf cls pixels."""

    names: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)

    def pixel_labels(self, index: int) -> np.ndarray:
        """Labels of one image as (m, 5) cls x1 y1 x2 y2 pixels."""
        (width, height), labels = self.sizes[index], self.labels[index]
        cls, xc, yc, w, h = labels.T
        return np.stack(
            (cls, (xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height), 1
        )


def _random_boxes(rng: np.random.Generator, n: int, width: int, height: int, border: float) -> np.ndarray:
    """(n, 4) xyxy pixel boxes of varied sizes; a fraction `border` of them touch an image edge."""
    w = width * rng.uniform(0.03, 0.45, n)
    h = height * rng.uniform(0.03, 0.45, n)
    x1 = rng.uniform(0, width - w)
    y1 = rng.uniform(0, height - h)
    touching = rng.random(n) < border
    side = rng.integers(0, 4, n)
    x1 = np.where(touching & (side == 0), 0.0, x1)
    x1 = np.where(touching & (side == 1), width - w, x1)
    y1 = np.where(touching & (side == 2), 0.0, y1)
    y1 = np.where(touching & (side == 3), height - h, y1)
    return np.stack((x1, y1, x1 + w, y1 + h), 1)


def _jitter(rng: np.random.Generator, boxes: np.ndarray, scale: np.ndarray, width: int, height: int) -> np.ndarray:
    """Move each box's edges by up to `scale` of its size, clipped to the image (as a detector's output is)."""
    size = np.concatenate((boxes[:, 2:] - boxes[:, :2],) * 2, 1)
    moved = boxes + rng.normal(0, 1, boxes.shape) * scale[:, None] * size
    moved[:, [0, 2]] = np.sort(moved[:, [0, 2]].clip(0, width), 1)
    moved[:, [1, 3]] = np.sort(moved[:, [1, 3]].clip(0, height), 1)
    moved[:, 2:] = np.maximum(moved[:, 2:], moved[:, :2] + 1)  # keep a positive size
    return moved


def _image(
    rng: np.random.Generator,
    case: Case,
    n_targets: int,
    classes: list[int],
    border: float = 0.2,
    recall: float = 0.8,
    n_false: int = 3,
    crowd: bool = False,
    predict: bool = True,
) -> None:
    width, height = int(rng.integers(160, 641)), int(rng.integers(160, 641))
    if crowd:  # many overlapping objects of one class in one region
        centre = rng.uniform(0.3, 0.7, 2) * (width, height)
        size = rng.uniform(0.05, 0.12, (n_targets, 2)) * (width, height)
        xy = centre + rng.normal(0, 0.12, (n_targets, 2)) * (width, height)
        xy = xy.clip(size / 2, (width, height) - size / 2)
        boxes = np.concatenate((xy - size / 2, xy + size / 2), 1)
    else:
        boxes = _random_boxes(rng, n_targets, width, height, border)
    target_cls = rng.choice(classes, n_targets).astype(float)
    normalised = np.stack(
        (
            target_cls,
            (boxes[:, 0] + boxes[:, 2]) / 2 / width,
            (boxes[:, 1] + boxes[:, 3]) / 2 / height,
            (boxes[:, 2] - boxes[:, 0]) / width,
            (boxes[:, 3] - boxes[:, 1]) / height,
        ),
        1,
    ).reshape(-1, 5)
    predictions = np.zeros((0, 6))
    if predict:
        found = rng.random(n_targets) < recall
        hits = _jitter(rng, boxes[found], rng.uniform(0.0, 0.25, found.sum()), width, height)
        hit_cls = target_cls[found].copy()
        confused = rng.random(len(hit_cls)) < 0.05  # wrong class now and then
        hit_cls[confused] = rng.choice(len(case.names), confused.sum())
        hit_conf = rng.uniform(0.3, 1.0, len(hits))
        twice = rng.random(n_targets) < 0.15  # duplicates a NMS let through, usually less confident
        dup = _jitter(rng, boxes[twice], rng.uniform(0.05, 0.3, twice.sum()), width, height)
        dup_conf = rng.uniform(0.05, 0.7, len(dup))
        # False positives: a few confident ones, then the long low-confidence tail a detector run at conf 0.001 gives.
        n_tail = int(rng.integers(5, 30)) if n_false else 0
        false = _random_boxes(rng, n_false + n_tail, width, height, border)
        false_cls = rng.choice(len(case.names), n_false + n_tail)
        false_conf = np.concatenate((rng.uniform(0.05, 0.8, n_false), rng.uniform(0.001, 0.05, n_tail)))
        # Half the missed objects still get a poorly placed, barely confident box.
        weak = ~found & (rng.random(n_targets) < 0.5)
        weak_boxes = _jitter(rng, boxes[weak], rng.uniform(0.2, 0.5, weak.sum()), width, height)
        weak_conf = rng.uniform(0.001, 0.1, len(weak_boxes))
        predictions = np.concatenate(
            (
                np.concatenate((hits, hit_conf[:, None], hit_cls[:, None]), 1),
                np.concatenate((weak_boxes, weak_conf[:, None], target_cls[weak][:, None]), 1),
                np.concatenate((dup, dup_conf[:, None], target_cls[twice][:, None]), 1),
                np.concatenate((false, false_conf[:, None], false_cls[:, None]), 1),
            )
        )
        predictions = predictions[rng.permutation(len(predictions))]
    case.sizes.append((width, height))
    case.labels.append(normalised)
    case.predictions.append(predictions)


def realistic_case(seed: int, n_images: int = 24) -> Case:
    """Several classes (the last has no targets, only false positives), misses, duplicates, false positives,
    border boxes, a few images without targets and a few without predictions."""
    rng = np.random.default_rng(seed)
    case = Case(names=["person", "car", "dog", "kite"])
    for i in range(n_images):
        kind = i % 8
        if kind == 6:
            _image(rng, case, 0, [0, 1, 2], n_false=int(rng.integers(0, 4)))  # background image
        elif kind == 7:
            _image(rng, case, int(rng.integers(1, 8)), [0, 1, 2], predict=False)  # no predictions
        else:
            _image(
                rng,
                case,
                int(rng.integers(1, 16)),
                [0, 1, 2],
                recall=float(rng.uniform(0.5, 0.95)),
                n_false=int(rng.integers(0, 8)),
            )
    return case


def crowded_case(seed: int, n_targets: int = 60, n_images: int = 4) -> Case:
    """Dense, overlapping objects of one main class per image (n_targets > 100 exercises the 100-per-class cap)."""
    rng = np.random.default_rng(seed)
    case = Case(names=["tree", "car"])
    for _ in range(n_images):
        _image(rng, case, n_targets, [0], recall=0.85, n_false=10, crowd=True)
    return case


def border_case(seed: int, n_images: int = 12) -> Case:
    """Every box touches an image edge."""
    rng = np.random.default_rng(seed)
    case = Case(names=["a", "b"])
    for _ in range(n_images):
        _image(rng, case, int(rng.integers(1, 10)), [0, 1], border=1.0, n_false=3)
    return case
