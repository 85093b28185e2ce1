"""The one validation loop, used by training (every epoch) and by val.py (checkpoints and exported models).

A predictor is either a DetectionModel (then validation losses can be computed from its raw maps) or any
callable that maps a float image batch to decoded predictions (batch, anchors, 4 + [1] + nc) and says whether
column 4 is objectness in a `has_objectness` attribute: an engine.backends Backend, whatever the file format.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dataio.data_config import DataConfigError
from engine.predict import Detections
from models.detection_model import DetectionModel
from utils.boxes import xywh_to_xyxy
from utils.files import path_inside
from utils.letterbox import clip_boxes, scale_boxes_to_original
from utils.logging import LOGGER
from utils.metrics import DetectionMetrics
from utils.nms import non_max_suppression


@dataclass
class ValidationResult:
    """Overall metrics (precision, recall, map50, map50_95, fitness), per-class rows, mean validation losses
    (zeros when no loss function was given), and speed in ms per image (preprocess, inference, nms)."""

    metrics: dict[str, float]
    per_class: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    speed: dict[str, float] = field(default_factory=dict)
    coco: dict[str, Any] | None = None


def to_original_pixels(boxes: torch.Tensor, shape_info: Any, input_hw: tuple[int, int]) -> torch.Tensor:
    """Map xyxy boxes from network-input pixels back to the original image and clip them to it.

    Letterboxing resizes both sides by one ratio, so the width ratio serves both axes.
    """
    if shape_info is None:  # no letterbox record (a mosaic): stay in input pixels
        return clip_boxes(boxes.clone(), input_hw)
    original_hw, ((_, ratio_w), padding) = shape_info
    return scale_boxes_to_original(boxes.clone(), ratio_w, padding, original_hw)


def augmented_predict(
    predictor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, stride: int = 32
) -> torch.Tensor:
    """Test-time augmentation: predictions at scales 1, 0.83, 0.67 (the middle one flipped left-right),
    mapped back to the input frame and concatenated along the anchor axis."""
    height, width = images.shape[2:]
    outputs = []
    for scale, flip in ((1.0, False), (0.83, True), (0.67, False)):
        x = images.flip(3) if flip else images
        if scale != 1.0:
            size = (int(height * scale), int(width * scale))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            pad_h, pad_w = (-size[0]) % stride, (-size[1]) % stride
            x = F.pad(x, (0, pad_w, 0, pad_h), value=0.447)  # grey, as letterbox pads
        y = predictor(x).clone()
        y[..., :4] /= scale
        if flip:
            y[..., 0] = width - y[..., 0]
        outputs.append(y)
    return torch.cat(outputs, 1)


def check_label_classes(dataloader: Any, nc: int) -> None:
    """Fail early, naming the data, when labels use class ids the model does not have."""
    labels = getattr(getattr(dataloader, "dataset", None), "labels", None)
    if not labels:
        return
    top = max((int(image_labels[:, 0].max()) for image_labels in labels if len(image_labels)), default=-1)
    if top >= nc:
        source = getattr(dataloader.dataset, "prefix", "") or "the dataset"
        raise DataConfigError(
            f"{source.strip(': ')} has labels with class id {top}, but the model has nc={nc} classes "
            f"(ids 0..{nc - 1}); use weights trained on this data or --single-cls"
        )


@torch.no_grad()
def validate(
    predictor: DetectionModel | Callable[[torch.Tensor], torch.Tensor],
    dataloader: Any,
    *,
    names: dict[int, str],
    device: torch.device | str = "cpu",
    conf_thres: float = 0.001,
    iou_thres: float = 0.7,
    max_det: int = 300,
    loss_fn: Callable | None = None,
    half: bool = False,
    augment: bool = False,
    single_cls: bool = False,
    plots: bool = False,
    save_dir: str | Path | None = None,
    verbose: bool = False,
    save_txt: bool = False,
    save_conf: bool = False,
    predictions_sink: Callable[[str, torch.Tensor, tuple[int, int]], None] | None = None,
) -> ValidationResult:
    """Run `predictor` over `dataloader` and compute P, R, mAP50, mAP50-95 (COCO-consistent, see utils.metrics).

    `predictions_sink(path, detections_xyxy_conf_cls_original_pixels, (h0, w0))` receives every image's
    detections (used for --save-json).
    """
    device = torch.device(device)
    is_model = isinstance(predictor, DetectionModel)
    # A model is never cast: `half` runs it under autocast (fp16 on CUDA, bf16 on CPU), so weights that are still
    # training (the EMA copy) are not rounded. A model the caller already holds in half precision gets half inputs.
    input_dtype = torch.float16 if half and not is_model else torch.float32
    autocast = False
    if is_model:
        was_training = predictor.training
        predictor.eval()
        predictor.to(device)
        input_dtype = next(predictor.parameters()).dtype
        autocast = half and input_dtype == torch.float32
    if not is_model and not hasattr(predictor, "has_objectness"):
        # Guessing would read an anchor head's objectness column as a class: wrong metrics, no error.
        raise TypeError(f"validate() takes a DetectionModel or a Backend (see load_backend), not {type(predictor)}")
    has_objectness = predictor.head.has_objectness if is_model else bool(predictor.has_objectness)
    stride = int(predictor.stride.max()) if is_model else int(getattr(predictor, "stride", 32))
    nc = 1 if single_cls else len(names)
    check_label_classes(dataloader, nc)
    metrics = DetectionMetrics({0: names.get(0, "item")} if single_cls else names)
    save_dir = Path(save_dir) if save_dir is not None else None
    if save_txt and save_dir is not None:
        (save_dir / "labels").mkdir(parents=True, exist_ok=True)
    loss_sum: torch.Tensor | None = None
    timings = np.zeros(3)
    seen = 0
    progress = tqdm(
        dataloader,
        desc=f"{'Class':>22}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}{'mAP50-95':>11}",
        bar_format="{l_bar}{bar:10}{r_bar}",
    )
    for batch_index, (images, targets, paths, shapes) in enumerate(progress):
        if not paths:  # every image of the batch failed to decode mid-run (the dataset warned and left them out)
            continue
        start = time.perf_counter()
        images = images.to(device, non_blocking=True).to(input_dtype) / 255
        targets = targets.to(device)
        after_pre = time.perf_counter()

        with torch.autocast(device.type, dtype=_autocast_dtype(device), enabled=autocast):
            if is_model and loss_fn is not None:
                raw = predictor.forward_raw(images)
                _, items = loss_fn([r.float() for r in raw], targets)
                loss_sum = items.detach().cpu() if loss_sum is None else loss_sum + items.detach().cpu()
                outputs = predictor.head.decode(raw)
            else:
                outputs = None
            if augment:
                outputs = augmented_predict(predictor, images, stride)
            elif outputs is None:
                outputs = predictor(images)
        outputs = outputs.float()
        if device.type == "cuda":  # kernels run asynchronously: wait so the time is the inference's
            torch.cuda.synchronize(device)
        after_inference = time.perf_counter()

        detections = non_max_suppression(
            outputs,
            conf_thres,
            iou_thres,
            multi_label=nc > 1,
            agnostic=single_cls,
            max_det=max_det,
            has_objectness=has_objectness,
        )
        after_nms = time.perf_counter()
        timings += (after_pre - start, after_inference - after_pre, after_nms - after_inference)
        seen += len(images)

        height, width = images.shape[2:]
        for i, det in enumerate(detections):
            labels = targets[targets[:, 0] == i, 1:]
            boxes = xywh_to_xyxy(labels[:, 1:5] * torch.tensor([width, height, width, height], device=device))
            labels_px = torch.cat((labels[:, :1], to_original_pixels(boxes, shapes[i], (height, width))), 1)
            det = det.clone()
            if single_cls:
                det[:, 5] = 0
            det[:, :4] = to_original_pixels(det[:, :4], shapes[i], (height, width))
            if single_cls and len(labels_px):
                labels_px[:, 0] = 0
            metrics.update(det.cpu(), labels_px.cpu())
            original_hw = shapes[i][0] if shapes[i] is not None else (height, width)
            if save_txt and save_dir is not None:
                label_file = path_inside(save_dir / "labels", f"{Path(paths[i]).stem}.txt")  # image names are data
                _write_txt(label_file, det, original_hw, save_conf)
            if predictions_sink is not None:
                predictions_sink(paths[i], det.cpu(), original_hw)

        if plots and save_dir is not None and batch_index < 3:
            _plot_val_batch(images, targets, detections, paths, names, save_dir, batch_index)

    results = metrics.compute()
    speed = dict(zip(("preprocess", "inference", "nms"), (timings / max(seen, 1) * 1e3).tolist()))
    LOGGER.info(metrics.table(results, per_class=verbose and len(names) > 1))
    LOGGER.info(
        f"Speed: {speed['preprocess']:.1f}ms pre-process, {speed['inference']:.1f}ms inference, "
        f"{speed['nms']:.1f}ms NMS per image"
    )
    if plots and save_dir is not None:
        metrics.plot(save_dir)
    if is_model:
        predictor.train(was_training)
    losses = (
        (loss_sum / max(len(dataloader), 1)).tolist()
        if loss_sum is not None
        else [0.0] * len(getattr(loss_fn, "names", ()))
    )
    summary = {k: float(results[k]) for k in ("precision", "recall", "map50", "map50_95", "fitness")}
    return ValidationResult(metrics=summary, per_class=results["per_class"], losses=losses, speed=speed)


def _autocast_dtype(device: torch.device) -> torch.dtype:
    """Half precision as the device runs it fastest: fp16 on CUDA, bf16 on CPU (which has no fast fp16 kernels)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def _write_txt(path: Path, detections: torch.Tensor, original_hw: tuple[int, int], save_conf: bool) -> None:
    """One line per detection: class x y w h [conf], normalised to the original image (as detect.py writes)."""
    det = detections.cpu().numpy()
    found = Detections(str(path), tuple(original_hw), det[:, :4], det[:, 4], det[:, 5].astype(int))
    path.write_text("".join(line + "\n" for line in found.label_lines(with_confidence=save_conf)))


def _plot_val_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    detections: list[torch.Tensor],
    paths: list[str],
    names: dict[int, str],
    save_dir: Path,
    index: int,
) -> None:
    from utils.plots import plot_batch  # matplotlib only when plotting, as in utils/metrics.py

    pixels = (images.float() * 255).byte().cpu()
    plot_batch(pixels, targets.cpu(), paths, names, save_dir / f"val_batch{index}_labels.jpg")
    plot_batch(pixels, [d.cpu() for d in detections], paths, names, save_dir / f"val_batch{index}_pred.jpg")
