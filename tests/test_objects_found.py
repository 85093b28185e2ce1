"""benchmarks/objects_found.py's count: an object is found by at most one detection of its class at IoU >= the bar."""

from __future__ import annotations

import numpy as np

from benchmarks.objects_found import count_found


def test_each_object_is_found_once_by_a_detection_of_its_class() -> None:
    gt_boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], dtype=float)
    gt_classes = np.array([0, 0, 1])
    boxes = np.array(
        [
            [0, 0, 10, 10],  # finds object 0
            [0, 0, 10, 11],  # a duplicate of it: object 0 is taken, nothing else overlaps
            [20, 20, 31, 31],  # finds object 1 (IoU 0.83)
            [40, 40, 50, 50],  # on object 2, but the wrong class
        ],
        dtype=float,
    )
    scores, classes = np.array([0.9, 0.8, 0.7, 0.95]), np.array([0, 0, 0, 0])
    assert count_found(boxes, scores, classes, gt_classes, gt_boxes, iou=0.5) == 2
    assert count_found(boxes, scores, classes, gt_classes, gt_boxes, iou=0.9) == 1  # object 1's box is too loose
    assert count_found(boxes[:0], scores[:0], classes[:0], gt_classes, gt_boxes, iou=0.5) == 0
