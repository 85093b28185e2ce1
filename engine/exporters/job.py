"""What every exporter is given: one fused model, prepared once, and the options of this export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from engine.metadata import ModelMetadata

if TYPE_CHECKING:
    from engine.exporters.calibration import CalibrationImages

DEFAULT_OPSET = 17  # the ONNX opset written when none is asked for


@dataclass
class ExportJob:
    """The fused deploy model with an example input of the export shape and the metadata every format embeds.

    `written` holds what this export has already produced, by format name, so a format converted from another
    (OpenVINO from ONNX) reuses that file instead of writing it again; `scratch` is a directory removed when the
    export ends, for intermediate files nobody asked for (the fp32 ONNX an int8 or fp16 format starts from).
    """

    model: nn.Module  # fused, eval, no gradients; fp16 with `half` on CUDA
    example: torch.Tensor  # (batch, 3, h, w) zeros of the export's batch, size and dtype
    metadata: ModelMetadata
    weights: Path  # the checkpoint exported: every output is written beside it
    opset: int = DEFAULT_OPSET
    dynamic: bool = False  # free batch, height and width
    simplify: bool = False  # run onnxslim over the ONNX graph
    half: bool = False  # fp16: the model (CUDA) for TorchScript and ONNX, the weights for OpenVINO
    int8: bool = False  # quantize (ONNX, OpenVINO) with `calibration`, the decode behind `decode_weights` kept float
    calibration: CalibrationImages | None = None
    decode_weights: set[str] = field(default_factory=set)  # decode_scope.prediction_weight_names(model)
    scratch: Path | None = None
    written: dict[str, Path] = field(default_factory=dict)
