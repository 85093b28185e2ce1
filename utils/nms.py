"""Non-maximum suppression over decoded head outputs, for both head families."""

from __future__ import annotations

import time

import torch
import torchvision

from utils.boxes import xywh_to_xyxy
from utils.logging import LOGGER


def non_max_suppression(
    prediction: torch.Tensor,
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
        prediction: (batch, anchors, 4 + [1] + nc) from a head in eval mode, boxes xywh in pixels.
        has_objectness: column 4 is objectness (anchor-based head); scores are objectness x class prob.
        multi_label: keep every class above `conf_thres` per box, not just the best one.
        agnostic: suppress across classes.
        time_limit: seconds for the whole batch; past it the remaining images get no detections (logged).

    Returns:
        Per image a (n, 6) tensor: x1, y1, x2, y2, confidence, class.
    """
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"conf_thres {conf_thres} and iou_thres {iou_thres} must be in [0, 1]")
    batch = prediction.shape[0]
    start = time.time()
    offset = 5 if has_objectness else 4
    nc = prediction.shape[2] - offset
    output = [torch.zeros((0, 6), device=prediction.device) for _ in range(batch)]
    class_filter = torch.tensor(classes, device=prediction.device) if classes is not None else None
    max_wh = 7680  # class offset for batched NMS; larger than any image side
    for i, x in enumerate(prediction):
        scores = x[:, offset:]
        if has_objectness:
            scores = scores * x[:, 4:5]
        boxes = xywh_to_xyxy(x[:, :4])
        if multi_label and nc > 1:
            rows, cols = (scores > conf_thres).nonzero(as_tuple=False).T
            det = torch.cat((boxes[rows], scores[rows, cols, None], cols[:, None].float()), 1)
        else:
            conf, cls = scores.max(1, keepdim=True)
            det = torch.cat((boxes, conf, cls.float()), 1)[conf.view(-1) > conf_thres]
        if class_filter is not None:
            det = det[(det[:, 5:6] == class_filter).any(1)]
        if not det.shape[0]:
            continue
        if det.shape[0] > max_candidates:
            det = det[det[:, 4].argsort(descending=True)[:max_candidates]]
        offsets = det[:, 5:6] * (0 if agnostic else max_wh)
        keep = torchvision.ops.nms(det[:, :4] + offsets, det[:, 4], iou_thres)[:max_det]
        output[i] = det[keep]
        if time_limit is not None and time.time() - start > time_limit:
            LOGGER.warning(f"NMS time limit {time_limit:.2f}s exceeded after {i + 1}/{batch} images")
            break
    return output
