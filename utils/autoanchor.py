"""AutoAnchor: check how well an anchor-based head's anchors fit the training boxes, and refit them if not.

Fit is measured with the same width/height ratio rule the loss uses to match boxes to anchors: a box can be
learned by an anchor when both its sides are within a factor `threshold` (hyp anchor_t) of the anchor's.
Best possible recall (BPR) is the fraction of boxes that at least one anchor can match. When BPR is below
0.98, anchors are recomputed with k-means on the box sizes, refined by a short seeded genetic search, and
installed in the head only if they match more boxes. Everything is driven by one numpy Generator, so a fixed
seed gives the same anchors every time.

Box sizes are given in PIXELS at the training image size (see `label_wh_at_size` to compute them from
normalised labels and original image shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from utils.logging import LOGGER

PREFIX = "AutoAnchor: "
MIN_SIDE = 2.0  # boxes with both sides below this many pixels are ignored when fitting (label noise)


@dataclass
class AnchorReport:
    """What `check_anchors` found and did. Anchors are (levels, anchors, 2) in pixels."""

    bpr: float  # best possible recall of the anchors the model had
    anchors_above: float  # mean number of anchors per box above the threshold, before
    replaced: bool
    anchors: np.ndarray  # the anchors the model has now
    new_bpr: float | None = None  # of the proposed anchors, when a refit was attempted
    new_anchors_above: float | None = None
    proposed: np.ndarray | None = None  # (levels, anchors, 2) proposed anchors, when a refit was attempted


def label_wh_at_size(
    normalised_wh: Sequence[np.ndarray], image_shapes: Sequence[tuple[int, int]] | np.ndarray, imgsz: int
) -> np.ndarray:
    """Box sizes in pixels at training size `imgsz` (long side letterboxed to imgsz), as (N, 2).

    `normalised_wh[i]` is image i's (n_i, 2) box widths/heights normalised to that image, and `image_shapes[i]`
    its original (height, width).
    """
    if len(normalised_wh) != len(image_shapes):
        raise ValueError(f"label_wh_at_size: {len(normalised_wh)} label arrays for {len(image_shapes)} image shapes")
    sizes = []
    for wh, (height, width) in zip(normalised_wh, image_shapes):
        wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
        ratio = imgsz / max(height, width)
        sizes.append(wh * np.array([width * ratio, height * ratio]))
    return np.concatenate(sizes) if sizes else np.zeros((0, 2))


def anchor_fit(anchors: np.ndarray, label_wh: np.ndarray, threshold: float) -> tuple[float, float]:
    """(BPR, anchors above threshold per box) of `anchors` (K, 2) for boxes `label_wh` (N, 2), both in pixels."""
    ratio_metric = _ratio_metric(np.asarray(anchors, dtype=np.float64), label_wh)
    best = ratio_metric.max(1)
    return float((best > 1 / threshold).mean()), float((ratio_metric > 1 / threshold).sum(1).mean())


def _ratio_metric(anchors: np.ndarray, label_wh: np.ndarray) -> np.ndarray:
    """(N, K): for each box and anchor, the worse of the two side ratios, as a number in [0, 1].

    Computed with plain divisions so ratios on the threshold (e.g. exactly 4x) compare exactly.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = label_wh[:, None] / anchors[None]
        return np.nan_to_num(np.minimum(r, 1 / r).min(2))


def _log(sizes: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a zero side becomes -inf: no anchor ever matches it
        return np.log(np.asarray(sizes, dtype=np.float64))


def _log_distance(log_anchors: np.ndarray, log_wh: np.ndarray) -> np.ndarray:
    """(N, K) max over width and height of |log box side - log anchor side| (min(r, 1/r) = exp(-|log r|))."""
    with np.errstate(invalid="ignore"):  # -inf - -inf (zero box side, zero anchor side) is NaN: no match
        width = np.abs(log_wh[:, 0:1] - log_anchors[None, :, 0])
        height = np.abs(log_wh[:, 1:2] - log_anchors[None, :, 1])
        distance = np.maximum(width, height)  # elementwise, not a reduction over a size-2 axis: much faster
    return np.where(np.isnan(distance), np.inf, distance)


def _fitness(anchors: np.ndarray, log_wh: np.ndarray, threshold: float) -> float:
    """Mean best ratio over boxes (given as log sizes), counting only boxes that some anchor can match."""
    best = np.exp(-_log_distance(_log(anchors).astype(log_wh.dtype), log_wh).min(1))
    return float((best * (best > 1 / threshold)).mean())


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ initialisation; (k, d) centroids. An emptied cluster is re-seeded."""
    if len(points) < k:
        raise ValueError(f"k-means needs at least k={k} points, got {len(points)}")
    centroids = [points[rng.integers(len(points))]]
    for _ in range(1, k):  # k-means++: next centre drawn in proportion to squared distance to the nearest
        distance = ((points[:, None] - np.array(centroids)[None]) ** 2).sum(-1).min(1)
        total = distance.sum()
        index = rng.choice(len(points), p=distance / total) if total > 0 else rng.integers(len(points))
        centroids.append(points[index])
    centroids = np.array(centroids, dtype=np.float64)
    for _ in range(iterations):
        distance = ((points[:, None] - centroids[None]) ** 2).sum(-1)
        nearest = distance.argmin(1)
        updated = centroids.copy()
        for j in range(k):
            members = points[nearest == j]
            updated[j] = members.mean(0) if len(members) else points[distance.min(1).argmax()]
        if np.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


def kmean_anchors(
    label_wh: np.ndarray,
    count: int,
    threshold: float = 4.0,
    imgsz: int = 640,
    generations: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """`count` anchors (count, 2) in pixels, sorted small to large: k-means on whitened sizes, then evolution.

    The evolution mutates all anchors by random factors (probability 0.9 per value, sigma 0.1, clipped to
    [0.3, 3]) and keeps a mutation when it raises the fitness (mean best ratio over matchable boxes).
    """
    rng = np.random.default_rng(seed)
    label_wh = _check_label_wh(label_wh)
    tiny = int((label_wh < 3.0).any(1).sum())
    if tiny:
        LOGGER.warning(f"{PREFIX}{tiny} of {len(label_wh)} boxes are smaller than 3 pixels")
    fit_wh = label_wh[(label_wh >= MIN_SIDE).any(1)]
    sigma = fit_wh.std(0) if len(fit_wh) else np.ones(2)
    sigma[sigma == 0] = 1.0  # all boxes the same size along one axis: nothing to whiten
    if len(np.unique(fit_wh, axis=0)) >= count:
        anchors = kmeans(fit_wh / sigma, count, rng) * sigma
    else:  # fewer distinct sizes than anchors: start from a random spread instead
        LOGGER.info(f"{PREFIX}{len(fit_wh)} usable boxes for {count} anchors; starting from random anchors")
        anchors = np.sort(rng.random(count * 2)).reshape(count, 2) * imgsz
        if not len(fit_wh):
            return anchors[np.argsort(anchors.prod(1))]

    log_wh = _log(fit_wh).astype(np.float32)  # logs once: each generation is then a subtraction and a max
    best_fitness = _fitness(anchors, log_wh, threshold)
    mutation_probability, mutation_sigma = 0.9, 0.1
    bar = tqdm(range(generations), desc=f"{PREFIX}evolving anchors", disable=not progress, leave=False)
    for _ in bar:
        factors = np.ones(anchors.shape)
        while (factors == 1).all():  # mutate until something changes
            mask = rng.random(anchors.shape) < mutation_probability
            factors = (mask * rng.random() * rng.standard_normal(anchors.shape) * mutation_sigma + 1).clip(0.3, 3.0)
        candidate = (anchors * factors).clip(min=MIN_SIDE)
        fitness = _fitness(candidate, log_wh, threshold)
        if fitness > best_fitness:
            best_fitness, anchors = fitness, candidate
            bar.set_description(f"{PREFIX}evolving anchors, fitness {best_fitness:.4f}")
    return anchors[np.argsort(anchors.prod(1))]


def check_anchors(
    model: nn.Module,
    label_wh: np.ndarray,
    threshold: float = 4.0,
    imgsz: int = 640,
    generations: int = 1000,
    seed: int = 0,
    min_bpr: float = 0.98,
    progress: bool = True,
) -> AnchorReport:
    """Check the anchors of `model`'s anchor-based head against box sizes; refit them if BPR < `min_bpr`.

    Args:
        model: a DetectionModel (or its AnchorDetect head); its `head.anchors` (pixels) may be replaced in place.
        label_wh: (N, 2) box widths and heights in pixels at the training size `imgsz`.
        threshold: the loss's anchor_t (largest side ratio between a box and an anchor that can learn it).
        imgsz: training image size (used for a random start when there are too few boxes for k-means).
        generations, seed: the evolution's length and random seed (same seed, same anchors).
    """
    head = getattr(getattr(model, "module", model), "head", model)
    if not getattr(head, "has_objectness", False) or not hasattr(head, "anchors"):
        raise TypeError(f"check_anchors needs an anchor-based head (AnchorDetect), got {type(head).__name__}")
    if threshold <= 1:
        raise ValueError(f"check_anchors: threshold (anchor_t) must be > 1, got {threshold}")
    label_wh = _check_label_wh(label_wh)
    current = head.anchors.detach().cpu().double().numpy()
    bpr, above = anchor_fit(current.reshape(-1, 2), label_wh, threshold)
    summary = f"{PREFIX}{above:.2f} anchors/target, {bpr:.3f} best possible recall (BPR)."
    if bpr >= min_bpr:
        LOGGER.info(f"{summary} Current anchors fit the dataset.")
        return AnchorReport(bpr, above, False, current.astype(np.float32))

    LOGGER.info(f"{summary} Anchors fit poorly; computing new ones with k-means on {len(label_wh)} boxes...")
    levels, per_level = current.shape[:2]
    proposed = kmean_anchors(label_wh, levels * per_level, threshold, imgsz, generations, seed, progress)
    new_bpr, new_above = anchor_fit(proposed, label_wh, threshold)
    proposed = proposed.reshape(levels, per_level, 2).astype(np.float32)
    report = AnchorReport(bpr, above, False, current.astype(np.float32), new_bpr, new_above, proposed)
    if new_bpr > bpr:
        with torch.no_grad():
            head.anchors.copy_(torch.from_numpy(proposed))
        head.order_anchors()  # sorted small to large; flip if the head's strides run the other way
        report.replaced = True
        report.anchors = head.anchors.detach().cpu().numpy().copy()
        text = ", ".join(f"{w:.0f},{h:.0f}" for w, h in report.anchors.reshape(-1, 2))
        LOGGER.info(f"{PREFIX}new anchors: {new_above:.2f} anchors/target, {new_bpr:.3f} BPR. Installed: {text}")
    else:
        LOGGER.info(f"{PREFIX}new anchors reach BPR {new_bpr:.3f}, not better; keeping the original anchors")
    return report


def _check_label_wh(label_wh: np.ndarray) -> np.ndarray:
    array = np.asarray(label_wh, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"label_wh must have shape (N, 2) (box width, height in pixels), got {array.shape}")
    if not len(array):
        raise ValueError("label_wh is empty: no boxes to fit anchors to")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("label_wh must hold finite, non-negative box sizes in pixels")
    return array
