"""The Python API: load weights, predict on a path, an array, a PIL image or a list, read boxes, scores, classes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.api import Detector
from engine.sources import SourceError
from models.checkpoint_model import model_from_checkpoint
from tests.engine_helpers import match_detections, shared_exports, write_image


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("api")
    return [write_image(root / "a.jpg", 48, 80, seed=3), write_image(root / "b.jpg", 64, 64, seed=4)]


def test_predict_on_paths_arrays_and_lists(images: list[Path]) -> None:
    detector = Detector(shared_exports("yolo11n.yaml")["onnx"], imgsz=64, conf_thres=0.3)
    assert detector.names == {0: "thing0", 1: "thing1", 2: "thing2"}
    by_path = detector.predict([str(p) for p in images])
    assert [Path(r.path).name for r in by_path] == ["a.jpg", "b.jpg"]
    arrays = [cv2.imread(str(p)) for p in images]
    by_array = detector.predict(arrays)
    (single,) = detector(arrays[0])
    (pil,) = detector.predict(Image.open(images[0]))
    for result, image in zip(by_path, arrays):
        assert len(result) > 0
        assert result.boxes.shape == (len(result), 4) and result.boxes.dtype == np.float32
        assert result.scores.shape == result.classes.shape == (len(result),)
        assert result.scores.min() > 0.3 and result.classes.max() < 3
        h, w = image.shape[:2]
        assert (
            (result.boxes[:, [0, 2]] <= w).all() and (result.boxes[:, [1, 3]] <= h).all() and (result.boxes >= 0).all()
        )
    for a, b in zip(by_path, by_array):  # the same pixels give the same detections whatever the input type
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
    assert np.array_equal(single.boxes, by_path[0].boxes) and np.array_equal(pil.boxes, by_path[0].boxes)


def test_in_memory_model_matches_its_export(images: list[Path]) -> None:
    files = shared_exports("yolo11n.yaml")
    in_memory = Detector(model_from_checkpoint(files["pt"]), device="cpu", imgsz=64, conf_thres=0.3)
    exported = Detector(files["torchscript"], device="cpu", imgsz=64, conf_thres=0.3)
    for a, b in zip(in_memory.predict(images), exported.predict(images)):
        assert len(a) > 0 and match_detections(a, b) == 1.0


def test_bad_inputs_are_reported(images: list[Path], tmp_path: Path) -> None:
    detector = Detector(shared_exports("yolo11n.yaml")["onnx"], imgsz=64)
    results = detector.predict([images[0], tmp_path / "missing.jpg"])
    assert len(results) == 1 and detector.failures[0][0].endswith("missing.jpg")
    with pytest.raises(SourceError, match="expected an HxWx3"):
        detector.predict(np.zeros((2, 3, 64, 64), np.uint8))
    with pytest.raises(SourceError, match="expected dtype uint8"):
        detector.predict(np.zeros((64, 64, 3), np.float32))


def test_boxes_map_back_to_original_pixels(images: list[Path]) -> None:
    """The same network input from an image and from its exact 2x enlargement: boxes differ by exactly 2x."""
    detector = Detector(shared_exports("yolo11n.yaml")["onnx"], imgsz=96, conf_thres=0.3)
    small = cv2.imread(str(images[0]))  # 48x80: letterboxed at ratio 1 (no resize) into 64x96
    large = cv2.resize(small, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)  # halving it gives `small` back
    (a,), (b,) = detector.predict(small), detector.predict(large)
    assert len(a) > 0 and np.array_equal(a.classes, b.classes)
    np.testing.assert_allclose(b.boxes, a.boxes * 2, atol=1e-3)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)
