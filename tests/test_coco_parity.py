"""Our mAP50 and mAP50-95 against pycocotools on seeded synthetic cases (must agree within 0.005)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.coco_cases import Case, border_case, crowded_case, realistic_case
from utils.coco import (
    coco_image_id,
    detections_to_coco_results,
    evaluate_with_pycocotools,
    save_json,
    yolo_labels_to_coco,
)
from utils.metrics import DetectionMetrics

TOLERANCE = 0.005


def ours(case: Case, **options) -> dict:
    metrics = DetectionMetrics(case.names, **options)
    for index, predictions in enumerate(case.predictions):
        metrics.update(predictions, case.pixel_labels(index))
    return metrics.compute()


def pycocotools(case: Case, max_dets: int = 100, full_precision: bool = False) -> dict:
    images = [
        (f"images/{index:06d}.jpg", w, h, labels) for index, ((w, h), labels) in enumerate(zip(case.sizes, case.labels))
    ]
    annotations = yolo_labels_to_coco(images, case.names)
    results = []
    for (path, *_), predictions in zip(images, case.predictions):
        decimals = {"box_decimals": None, "score_decimals": None} if full_precision else {}
        results += detections_to_coco_results(path, predictions, **decimals)
    return evaluate_with_pycocotools(annotations, results, max_dets=max_dets)


def assert_parity(case: Case, max_dets: int = 100, **options) -> tuple[dict, dict]:
    ours_result = ours(case, **options)
    coco_result = pycocotools(case, max_dets=max_dets)
    for key in ("map50", "map50_95"):
        assert abs(ours_result[key] - coco_result[key]) <= TOLERANCE, (key, ours_result[key], coco_result[key])
    return ours_result, coco_result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_realistic(seed):
    """Several classes, a class with no targets, misses, duplicates, false positives, images without predictions."""
    case = realistic_case(seed)
    assert any(len(p) == 0 for p in case.predictions)  # some images have no predictions
    assert 3 not in np.concatenate(case.labels)[:, 0] and 3 in np.concatenate(case.predictions)[:, 5]
    ours_result, coco_result = assert_parity(case)
    assert 0.1 < coco_result["map50_95"] < coco_result["map50"] < 0.9  # a non-trivial case
    # Full-precision JSON (no rounding) agrees even more closely: the method is the same, only rounding differs.
    exact = pycocotools(case, full_precision=True)
    assert abs(exact["map50_95"] - ours_result["map50_95"]) < 1e-6


def test_parity_crowded():
    assert_parity(crowded_case(seed=1, n_targets=60))


def test_parity_crowded_over_100_per_class():
    """More than 100 predictions of one class in an image: pycocotools keeps the top 100, and so do we."""
    case = crowded_case(seed=2, n_targets=120, n_images=2)
    assert max(len(p) for p in case.predictions) > 100
    _, coco = assert_parity(case)
    # Without the cap on both sides the numbers agree too, and differ from the capped ones.
    _, coco_300 = assert_parity(case, max_dets=300, max_det_per_class=None)
    assert coco_300["map50_95"] > coco["map50_95"] + 0.01


def test_parity_border_boxes():
    case = border_case(seed=3)
    labels = np.concatenate([case.pixel_labels(i) for i in range(len(case.sizes))])
    assert np.isclose(labels[:, 1:3], 0, atol=1e-6).any()  # boxes on the top/left edges
    assert_parity(case)


def test_parity_no_predictions_for_classes_with_targets():
    """Only predictions of a class without targets: every AP is 0 for both."""
    case = realistic_case(seed=4, n_images=6)
    case.predictions = [np.array([[1, 1, 20, 20, 0.5, 3]]) for _ in case.predictions]
    ours_result, coco_result = assert_parity(case)
    assert coco_result["map50_95"] == 0.0 and ours_result["map50_95"] == 0.0


def test_no_predictions_at_all():
    case = realistic_case(seed=5, n_images=4)
    case.predictions = [np.zeros((0, 6)) for _ in case.predictions]
    assert ours(case)["map50_95"] == 0.0
    assert pycocotools(case)["map50_95"] == 0.0


def test_matching_methods_differ_on_crowded_scenes():
    """The YOLOv5/ultralytics matching rule is what breaks parity in crowded scenes; COCO's rule is the default."""
    case = crowded_case(seed=1, n_targets=60)
    reference_rule = ours(case, matching="iou")
    coco = pycocotools(case)
    assert abs(reference_rule["map50"] - coco["map50"]) > TOLERANCE


def test_yolo_labels_to_coco_structure(tmp_path: Path):
    labels = np.array([[1, 0.5, 0.5, 0.2, 0.4], [0, 0.1, 0.1, 0.2, 0.2]])
    coco = yolo_labels_to_coco(
        [("data/images/000042.jpg", 200, 100, labels), (7, 10, 10, np.zeros((0, 5)))], ["a", "b"]
    )
    assert [image["id"] for image in coco["images"]] == [42, 7]
    assert coco["categories"] == [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]
    first, second = coco["annotations"]
    assert first["id"] == 1 and second["id"] == 2  # ids from 1: pycocotools reads id 0 as "no match"
    assert first["bbox"] == pytest.approx([80, 30, 40, 40]) and first["area"] == pytest.approx(1600)
    assert first["category_id"] == 1 and first["iscrowd"] == 0
    assert second["bbox"] == pytest.approx([0, 0, 40, 20])
    results = detections_to_coco_results("x/000042.jpg", np.array([[80, 30, 120.12345, 70, 0.123456789, 1]]))
    assert results == [{"image_id": 42, "category_id": 1, "bbox": [80.0, 30.0, 40.123, 40.0], "score": 0.12346}]
    # From files, as --save-json writes them: a perfect prediction scores 1.
    annotations_path = save_json(coco, tmp_path / "annotations.json")
    perfect = detections_to_coco_results(42, np.array([[80, 30, 120, 70, 0.9, 1], [0, 0, 40, 20, 0.8, 0]]))
    result = evaluate_with_pycocotools(annotations_path, save_json(perfect, tmp_path / "predictions.json"))
    assert result["map50_95"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in result["summary"]
    assert len(result["stats"]) == 12


def test_coco_bad_input():
    assert coco_image_id("a/b/000123.jpg") == 123 and coco_image_id("a/img_1.jpg") == "img_1"
    with pytest.raises(ValueError, match="mix numbers and names"):
        yolo_labels_to_coco([("1.jpg", 10, 10, np.zeros((0, 5))), ("cat.jpg", 10, 10, np.zeros((0, 5)))], ["a"])
    with pytest.raises(ValueError, match="same id"):
        yolo_labels_to_coco([("a/1.jpg", 10, 10, np.zeros((0, 5))), ("b/1.jpg", 10, 10, np.zeros((0, 5)))], ["a"])
    with pytest.raises(ValueError, match="not in names"):
        yolo_labels_to_coco([("1.jpg", 10, 10, np.array([[4, 0.5, 0.5, 0.1, 0.1]]))], ["a"])
