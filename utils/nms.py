"""Non-maximum suppression over decoded head outputs, for both head families."""

from __future__ import annotations

import time

import torch
import torchvision

from utils.boxes import xywh_to_xyxy
from utils.logging import LOGGER


def non_max_suppression(
    prediction: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...],
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    classes: list[int] | None = None,
    agnostic: bool = False,
    multi_label: bool = False,
    max_det: int = 300,
    has_objectness: bool = False,
    max_candidates: int = 30000,
    time_limit: float | None = None,
) -> list[torch.Tensor]:
    """Filter decoded predictions into detections.

    Args:
        prediction: (batch, anchors, 4 + [1] + nc) from a head in eval mode, boxes xywh in pixels (a list or tuple
            whose first item is that tensor is accepted too).
        conf_thres: keep scores strictly above this.
        iou_thres: suppress boxes overlapping a better one of the same class (any class if `agnostic`) by more.
        classes: keep only these class ids.
        has_objectness: column 4 is objectness (anchor-based head); scores are objectness x class prob.
        multi_label: keep every class above `conf_thres` per box, not just the best one.
        agnostic: suppress across classes.
        max_det: detections kept per image (the highest scores).
        max_candidates: boxes per image entering NMS (the highest scores), to bound its cost.
        time_limit: seconds for the whole batch; once past it, the remaining images get no detections (logged).

    Returns:
        Per image a float32 (n, 6) tensor x1, y1, x2, y2, confidence, class, sorted by descending confidence.
    """
    if isinstance(prediction, (list, tuple)):
        prediction = prediction[0]  # some export/eval paths return (decoded, raw)
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"conf_thres {conf_thres} and iou_thres {iou_thres} must be in [0, 1]")
    if max_det < 1 or max_candidates < 1:
        raise ValueError(f"max_det ({max_det}) and max_candidates ({max_candidates}) must be >= 1")
    offset = 5 if has_objectness else 4
    if prediction.ndim != 3 or prediction.shape[2] <= offset:
        raise ValueError(
            f"prediction must be (batch, anchors, 4{' + 1' if has_objectness else ''} + nc), "
            f"got {tuple(prediction.shape)}"
        )
    batch = prediction.shape[0]
    start = time.time()
    output = []
    class_filter = torch.tensor(classes, device=prediction.device).view(1, -1) if classes is not None else None
    for i, x in enumerate(prediction):
        output.append(
            _image_nms(
                x,
                offset,
                conf_thres,
                iou_thres,
                class_filter,
                agnostic,
                multi_label,
                max_det,
                has_objectness,
                max_candidates,
            )
        )
        if time_limit is not None and time.time() - start > time_limit and i + 1 < batch:
            LOGGER.warning(
                f"NMS time limit {time_limit:.3f}s exceeded: {batch - i - 1}/{batch} images get no detections"
            )
            output += [torch.zeros((0, 6), device=prediction.device) for _ in range(batch - i - 1)]
            break
    return output


def _image_nms(
    x: torch.Tensor,
    offset: int,
    conf_thres: float,
    iou_thres: float,
    class_filter: torch.Tensor | None,
    agnostic: bool,
    multi_label: bool,
    max_det: int,
    has_objectness: bool,
    max_candidates: int,
) -> torch.Tensor:
    """NMS of one image's (anchors, 4 + [1] + nc) predictions; see `non_max_suppression`."""
    # float32 throughout: torchvision's CPU NMS has no half kernel, and callers get one dtype.
    x = x.float()
    empty = torch.zeros((0, 6), device=x.device)
    scores = x[:, offset:]
    if has_objectness:
        scores = scores * x[:, 4:5]
    # Cheap pre-filter: a box whose best score is not above the threshold contributes nothing in either mode.
    candidate = scores.amax(1) > conf_thres
    x, scores = x[candidate], scores[candidate]
    if not x.shape[0]:
        return empty
    boxes = xywh_to_xyxy(x[:, :4])
    if multi_label and scores.shape[1] > 1:
        rows, cols = (scores > conf_thres).nonzero(as_tuple=True)
        det = torch.cat((boxes[rows], scores[rows, cols, None], cols[:, None].float()), 1)
    else:
        conf, cls = scores.max(1, keepdim=True)
        det = torch.cat((boxes, conf, cls.float()), 1)
    if class_filter is not None:
        det = det[(det[:, 5:6] == class_filter).any(1)]
    if not det.shape[0]:
        return empty
    if det.shape[0] > max_candidates:
        det = det[det[:, 4].argsort(descending=True)[:max_candidates]]
    if agnostic:
        keep = torchvision.ops.nms(det[:, :4], det[:, 4], iou_thres)
    else:
        # batched_nms shifts each class by more than the largest coordinate, so classes never suppress each
        # other whatever the image size (a fixed offset like 7680 fails on larger images).
        keep = torchvision.ops.batched_nms(det[:, :4], det[:, 4], det[:, 5].long(), iou_thres)
    return det[keep[:max_det]]
