"""COCO JSON I/O and evaluation through pycocotools (`--save-json`).

Image ids: an int stays an int; a path gives its file stem, as an int when the stem is all digits (COCO's
000000000139.jpg -> 139), else the stem string. `yolo_labels_to_coco` and `detections_to_coco_results` use the
same rule, so their ids agree. Category ids are the class indices unless `category_ids` maps them (e.g. the
80 YOLO classes to COCO's 91 ids).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from utils.matching import as_numpy
from utils.metrics import names_to_dict

ImageKey = str | Path | int


def coco_image_id(image: ImageKey) -> int | str:
    """COCO image id of a path or id (see the module docstring)."""
    if isinstance(image, (int, np.integer)) and not isinstance(image, bool):
        return int(image)
    if not isinstance(image, (str, Path)):
        raise TypeError(f"coco_image_id: expected a path or an int id, got {type(image).__name__} {image!r}")
    stem = Path(image).stem
    return int(stem) if stem.isdigit() else stem


def _category_id(cls: int, category_ids: Sequence[int] | None) -> int:
    if category_ids is None:
        return int(cls)
    if not 0 <= cls < len(category_ids):
        raise ValueError(f"class {cls} has no entry in category_ids (length {len(category_ids)})")
    return int(category_ids[cls])


def yolo_labels_to_coco(
    images: Iterable[tuple[ImageKey, int, int, np.ndarray | torch.Tensor]],
    names: dict[int, str] | list[str],
    category_ids: Sequence[int] | None = None,
) -> dict:
    """A COCO annotation dict from YOLO labels.

    Args:
        images: per image (path or id, width, height, labels (n, 5) cls x_center y_center w h normalised to [0, 1]).
        names: class names ({id: name} or list); every class becomes a category, with or without annotations.
        category_ids: optional category id per class index.

    Boxes become [x, y, w, h] in pixels, `area` = w * h, `iscrowd` 0; annotation ids start at 1 (pycocotools
    treats id 0 as "unmatched").
    """
    names = names_to_dict(names)
    coco = {
        "info": {"description": "converted from YOLO labels"},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [{"id": _category_id(i, category_ids), "name": str(n)} for i, n in sorted(names.items())],
    }
    seen: dict[int | str, ImageKey] = {}
    for index, item in enumerate(images):
        try:
            image, width, height, labels = item
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"yolo_labels_to_coco: images[{index}] must be (path or id, width, height, labels)"
            ) from error
        image_id = coco_image_id(image)
        if image_id in seen:
            raise ValueError(
                f"yolo_labels_to_coco: images[{index}] {image!r} has the same id {image_id!r} as {seen[image_id]!r}"
            )
        seen[image_id] = image
        if width <= 0 or height <= 0:
            raise ValueError(f"yolo_labels_to_coco: images[{index}] {image!r} has size {width}x{height}")
        coco["images"].append(
            {
                "id": image_id,
                "file_name": Path(image).name if isinstance(image, (str, Path)) else str(image),
                "width": int(width),
                "height": int(height),
            }
        )
        labels = as_numpy(labels).reshape(-1, 5) if np.size(labels) else np.zeros((0, 5))
        for cls, x, y, w, h in labels:
            if int(cls) not in names:
                raise ValueError(f"yolo_labels_to_coco: images[{index}] {image!r} has class {int(cls)} not in names")
            box = [(x - w / 2) * width, (y - h / 2) * height, w * width, h * height]
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": _category_id(int(cls), category_ids),
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    if len({type(i) for i in seen}) > 1:
        raise ValueError(
            "yolo_labels_to_coco: image ids mix numbers and names (file stems); pycocotools sorts ids and "
            "needs one type. Pass int ids instead of paths."
        )
    return coco


def detections_to_coco_results(
    image: ImageKey,
    detections: np.ndarray | torch.Tensor,
    category_ids: Sequence[int] | None = None,
    box_decimals: int | None = 3,
    score_decimals: int | None = 5,
) -> list[dict]:
    """COCO results of one image: detections (n, 6) x1 y1 x2 y2 conf cls in original-image pixels.

    Rounding (3 decimals for pixels, 5 for scores, as the references write them) keeps the JSON small; None
    keeps full precision.
    """
    image_id = coco_image_id(image)
    detections = as_numpy(detections).reshape(-1, 6)
    results = []
    for x1, y1, x2, y2, score, cls in detections:
        box = [x1, y1, x2 - x1, y2 - y1]
        results.append(
            {
                "image_id": image_id,
                "category_id": _category_id(int(cls), category_ids),
                "bbox": [float(v if box_decimals is None else round(v, box_decimals)) for v in box],
                "score": float(score if score_decimals is None else round(score, score_decimals)),
            }
        )
    return results


def save_json(data: dict | list, path: str | Path) -> Path:
    """Write COCO annotations or results as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def pycocotools_available() -> bool:
    """Whether pycocotools can be imported."""
    try:
        import pycocotools.cocoeval  # noqa: F401
    except ImportError:
        return False
    return True


def evaluate_with_pycocotools(
    annotations: str | Path | dict,
    results: str | Path | list[dict],
    image_ids: Sequence[int | str] | None = None,
    max_dets: int = 100,
) -> dict:
    """Run pycocotools' bbox evaluation.

    Args:
        annotations: COCO annotation file or dict (e.g. from `yolo_labels_to_coco`).
        results: COCO results file or list (e.g. from `detections_to_coco_results`).
        image_ids: evaluate only these images (default: every image of the annotations).
        max_dets: detections per image and class that count (pycocotools' default 100).

    Returns:
        dict(map50_95, map50, summary: pycocotools' printout, stats: its 12 numbers (None unless max_dets=100,
        the only setting its summary is defined for)). With no results at all, mAPs are 0 and pycocotools is not
        run (it cannot load an empty result list).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError("evaluate_with_pycocotools needs pycocotools: pip install pycocotools") from error
    if isinstance(annotations, (str, Path)):
        annotations = json.loads(Path(annotations).read_text())
    if isinstance(results, (str, Path)):
        results = json.loads(Path(results).read_text())
    if not results:
        return {"map50_95": 0.0, "map50": 0.0, "summary": "pycocotools not run: no detections", "stats": None}
    progress, summary = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(progress):  # pycocotools prints progress lines; keep them out of the log
        ground_truth = COCO()
        ground_truth.dataset = copy.deepcopy(annotations)  # pycocotools writes flags into the dicts it gets
        ground_truth.createIndex()
        detections = ground_truth.loadRes([dict(r) for r in results])
        evaluator = COCOeval(ground_truth, detections, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = list(image_ids)
        evaluator.params.maxDets = [1, 10, max_dets] if max_dets > 10 else [max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    if max_dets == 100:
        with contextlib.redirect_stdout(summary):
            evaluator.summarize()
    # precision: (T, R, K, A, M); area "all" is index 0, our max_dets the last. -1 marks classes without targets.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]

    def mean_valid(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    return {
        "map50_95": mean_valid(precision),
        "map50": mean_valid(precision[0]),
        "summary": summary.getvalue().rstrip() or f"AP computed with maxDets={max_dets} (no standard summary)",
        "stats": [float(s) for s in evaluator.stats] if max_dets == 100 else None,
    }
