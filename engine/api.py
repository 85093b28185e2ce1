"""The Python API: load weights once, predict on paths, arrays or lists, read boxes, scores and classes.

from engine.api import Detector
detector = Detector("runs/train/exp/weights/best.pt")   # or best.torchscript / best.onnx
for result in detector.predict(["bus.jpg", image_array]): print(result.boxes, result.scores, result.classes)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch.nn as nn

from engine.backends import Backend, PyTorchBackend
from engine.formats import load_backend
from engine.predict import Detections, Predictor
from engine.predict_options import PREDICT_DEFAULTS as D
from engine.sources import Source
from utils.torch_utils import select_device


class Detector:
    """A detector ready to predict. `weights` is a file in any supported format, or a DetectionModel in memory.

    Arrays are HxWx3 uint8 in BGR order (as cv2.imread gives them); PIL images are converted from RGB.
    """

    def __init__(
        self,
        weights: str | Path | nn.Module,
        device: str = D.device,
        imgsz: int | Sequence[int] | None = D.imgsz,
        conf_thres: float = D.conf_thres,
        iou_thres: float = D.iou_thres,
        classes: list[int] | None = D.classes,
        agnostic_nms: bool = D.agnostic_nms,
        max_det: int = D.max_det,
        half: bool = D.half,
    ) -> None:
        if isinstance(weights, nn.Module):
            backend: Backend = PyTorchBackend(None, weights, select_device(device), half)
        else:
            backend = load_backend(weights, device, half)
        self.predictor = Predictor(backend, imgsz, conf_thres, iou_thres, classes, agnostic_nms, max_det)
        self.failures: list[tuple[str, str]] = []

    @property
    def names(self) -> dict[int, str]:
        return self.predictor.backend.names

    def predict(self, source: str | Path | np.ndarray | Sequence, vid_stride: int = D.vid_stride) -> list[Detections]:
        """Detections per image (per frame for videos), in the source's order.

        `source` is anything detect.py takes (a file, folder, glob, video, .txt list, stream), an image array,
        or a list of paths or of arrays. Unreadable files are skipped and listed in `self.failures`.
        """
        frames = Source(source, vid_stride)
        results = [self.predictor.predict([frame.image], [frame.path])[0][0] for frame in frames]
        self.failures = frames.failures
        return results

    __call__ = predict
