"""The accuracy check after an int8 export: val.py's metrics of the fp32 model and of each int8 file on the data's
val split, side by side, and how far the int8 detections agree with the fp32 ones.

Agreement is the mAP50 of the int8 model's detections scored against the fp32 model's detections as ground truth,
with the project's one mAP (utils/metrics.py). The fp32 detections taken as ground truth are its most confident
ones over the split, as many as the split has labelled objects: the boxes the model would report if it found
every object. The threshold is one confidence for the whole split (the score of the N-th box), so the fp32 model
scored against itself gets exactly 1.0 (per-image top-N would rank one image's extra boxes above another's
reference boxes). A fixed confidence does not serve: the weakly trained trees models have no box at detect.py's
0.25 (yolov5n's best is 0.17), and their F1 peaks at the lowest confidence, where hundreds of noise boxes would
be the reference. 1.0: each of those fp32 boxes the int8 model reports too, at IoU >= 0.5, in the same class,
ranked above its own other boxes. Scoring against the labels instead would mix quantization error with the model's own
errors: a weak model can lose half its true positives to quantization and keep its mAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dataio.data_config import DataConfig
from dataio.loader import build_dataloader
from engine.backends import Backend
from engine.formats import load_backend
from engine.val_data import validation_dataset
from engine.validator import ValidationResult, validate
from utils.errors import UserError
from utils.logging import LOGGER
from utils.metrics import DetectionMetrics

VAL_CONF = 0.001  # val.py's default: the metrics printed are val.py's
DEFAULT_MIN_AGREEMENT = 0.90


class AgreementError(UserError):
    """An int8 export whose detections agree with the fp32 model's less than --min-agreement asks."""


@dataclass
class AccuracyCheck:
    """One int8 file against the fp32 model on the val split."""

    path: Path
    fp32: dict[str, float]  # precision, recall, map50, map50_95, fitness
    int8: dict[str, float]
    agreement: float  # nan when there is no fp32 detection (or no label) to agree with
    reference_boxes: int  # fp32 detections taken as ground truth

    def describe(self) -> str:
        """One line of figures: agreement, then mAP50 and mAP50-95 of both."""
        return (
            f"{self.path.name}: agreement {self.agreement:.3f} with the fp32 model ({self.reference_boxes} fp32 boxes "
            f"as ground truth); mAP50 fp32 {self.fp32['map50']:.3f} "
            f"int8 {self.int8['map50']:.3f}, mAP50-95 fp32 {self.fp32['map50_95']:.3f} int8 {self.int8['map50_95']:.3f}"
        )


Predictions = dict[str, torch.Tensor]  # image path -> (n, 6) x1 y1 x2 y2 conf cls in original pixels


def detection_agreement(
    reference: Predictions, predictions: Predictions, names: dict[int, str], objects: int
) -> tuple[float, int]:
    """(mAP50 of `predictions` scored against `reference`'s `objects` most confident detections over all images as
    ground truth, the number of those reference boxes, ties included); nan when there are none."""
    scores = torch.cat([d[:, 4] for d in reference.values()]) if reference else torch.zeros(0)
    if not len(scores) or objects < 1:
        return float("nan"), 0
    threshold = scores.sort(descending=True).values[min(objects, len(scores)) - 1]
    metrics = DetectionMetrics(names, iou_thresholds=[0.5])
    boxes = 0
    for path, detections in reference.items():
        confident = detections[detections[:, 4] >= threshold]
        boxes += len(confident)
        labels = torch.cat((confident[:, 5:6], confident[:, :4]), 1)
        metrics.update(predictions.get(path), labels)
    return (metrics.compute()["map50"] if boxes else float("nan")), boxes


def check_int8_accuracy(
    fp32: Backend,
    int8_files: Sequence[Path],
    data: DataConfig,
    imgsz: int,
    batch: int,
    single_cls: bool = False,
) -> list[AccuracyCheck]:
    """Validate `fp32` and each int8 file on `data`'s val split at `imgsz` (letterboxed into the square, as
    val.py does), print the metrics side by side and return each int8 file's figures."""
    dataset = validation_dataset(
        data.split("val"), imgsz, fp32.stride, batch, single_cls=single_cls, nc=data.nc, prefix="int8 check: "
    )
    loader = build_dataloader(dataset, batch, workers=0, shuffle=False)
    names = {0: "item"} if single_cls else fp32.names
    iou = fp32.metadata.val_iou

    def run(backend: Backend, shown: str) -> tuple[ValidationResult, Predictions]:
        found: Predictions = {}
        LOGGER.info(f"Validating {shown}")
        result = validate(
            backend,
            loader,
            names=names,
            device=backend.device,
            conf_thres=VAL_CONF,
            iou_thres=iou,
            single_cls=single_cls,
            predictions_sink=lambda path, det, hw: found.__setitem__(path, det),
        )
        return result, found

    objects = sum(len(labels) for labels in dataset.labels)
    fp32_result, reference = run(fp32, f"{fp32.path.name if fp32.path else 'the model'} (fp32)")
    checks = []
    for path in int8_files:
        result, predictions = run(load_backend(path, fp32.device), path.name)
        agreement, boxes = detection_agreement(reference, predictions, names, objects)
        checks.append(AccuracyCheck(path, fp32_result.metrics, result.metrics, agreement, boxes))
    LOGGER.info(_table(checks, fp32, data, dataset))
    return checks


def _table(checks: list[AccuracyCheck], fp32: Backend, data: DataConfig, dataset: object) -> str:
    images, boxes = len(getattr(dataset, "image_files", [])), sum(len(x) for x in getattr(dataset, "labels", []))
    lines = [
        f"int8 accuracy on the val split of {data.file or 'the data'} ({images} images, {boxes} labels; "
        f"conf {VAL_CONF}, NMS IoU {fp32.metadata.val_iou}):",
        f"{'model':<40}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}{'agreement':>11}",
    ]

    def row(name: str, m: dict[str, float], agreement: str) -> str:
        figures = f"{m['precision']:>8.3f}{m['recall']:>8.3f}{m['map50']:>8.3f}{m['map50_95']:>10.3f}"
        return f"{name:<40}{figures}{agreement:>11}"

    if checks:
        lines.append(row(f"{fp32.path.name if fp32.path else 'model'} (fp32)", checks[0].fp32, "-"))
    lines += [row(c.path.name, c.int8, f"{c.agreement:.3f}") for c in checks]
    if checks:
        lines.append(
            f"agreement: mAP50 of the int8 detections scored against the fp32 model's {checks[0].reference_boxes} most "
            f"confident detections (as many as the labels) as ground truth"
        )
    return "\n".join(lines)
