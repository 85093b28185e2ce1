"""How many labelled objects a detector finds at its operating point (detect.py's default confidence), per image.

An object counts as found when a detection of its class overlaps it at IoU >= --iou, each detection matched to
at most one object (greedy, highest score first) — what a user sees when they look at detect.py's output.

python benchmarks/objects_found.py --weights runs/train/exp/weights/best.pt            # trees val split
python benchmarks/objects_found.py --weights best.pt --source data/trees/images/val --conf 0.25 --iou 0.5
python benchmarks/objects_found.py --weights best.pt --conf 0.01 0.05 0.1 0.25   # one pass, a line per threshold
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dataio.sources import label_path_for  # noqa: E402
from engine.api import Detector  # noqa: E402
from engine.predict_options import PREDICT_DEFAULTS  # noqa: E402
from utils.boxes import xywh_to_xyxy  # noqa: E402
from utils.matching import box_iou_numpy  # noqa: E402


def read_labels(image: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(classes, xyxy pixel boxes) of an image's YOLO label file (empty when there is none)."""
    path = label_path_for(image)
    rows = np.loadtxt(path, ndmin=2) if path.is_file() and path.stat().st_size else np.zeros((0, 5))
    h, w = shape
    return rows[:, 0].astype(int), xywh_to_xyxy(rows[:, 1:5] * np.array([w, h, w, h]))


def count_found(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, gt_classes: np.ndarray, gt_boxes: np.ndarray, iou: float
) -> int:
    """Labelled objects matched by a detection of their class at IoU >= `iou`, one detection per object."""
    if not len(boxes) or not len(gt_boxes):
        return 0
    overlaps = box_iou_numpy(boxes[np.argsort(-scores)], gt_boxes)
    det_classes = classes[np.argsort(-scores)]
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for row, cls in zip(overlaps, det_classes):
        candidates = np.where((row >= iou) & ~taken & (gt_classes == cls), row, -1.0)
        best = int(candidates.argmax())
        if candidates[best] >= 0:
            taken[best] = True
    return int(taken.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="a trained model in any supported format")
    parser.add_argument("--source", default=str(ROOT / "data/trees/images/val"), help="folder of images")
    parser.add_argument(
        "--conf", type=float, nargs="+", default=[PREDICT_DEFAULTS.conf_thres], help="confidence threshold(s)"
    )
    parser.add_argument("--iou", type=float, default=0.5, help="IoU at which a detection finds an object")
    parser.add_argument("--imgsz", type=int, default=PREDICT_DEFAULTS.imgsz, help="inference size")
    args = parser.parse_args(argv)

    thresholds = sorted(args.conf)
    detector = Detector(args.weights, conf_thres=thresholds[0], imgsz=args.imgsz)  # one pass serves every threshold
    found = {conf: 0 for conf in thresholds}
    detections = {conf: 0 for conf in thresholds}
    total_labelled = 0
    for result in detector.predict(args.source):
        gt_classes, gt_boxes = read_labels(Path(result.path), result.shape)
        total_labelled += len(gt_boxes)
        for conf in thresholds:
            kept = result.scores >= conf
            hits = count_found(
                result.boxes[kept], result.scores[kept], result.classes[kept], gt_classes, gt_boxes, args.iou
            )
            found[conf] += hits
            detections[conf] += int(kept.sum())
            print(
                f"{Path(result.path).name}: {hits}/{len(gt_boxes)} found, {int(kept.sum())} detections at conf {conf}"
            )
    for conf in thresholds:
        share = found[conf] / max(total_labelled, 1)
        print(f"all: {found[conf]}/{total_labelled} found ({share:.0%}), {detections[conf]} detections at conf {conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
