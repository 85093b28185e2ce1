"""What every exporter is given: one fused model, prepared once, and the options of this export."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from engine.metadata import ModelMetadata

DEFAULT_OPSET = 17  # the ONNX opset written when none is asked for


@dataclass
class ExportJob:
    """The fused deploy model with an example input of the export shape and the metadata every format embeds.

    `written` holds what this export has already produced, by format name, so a format converted from another
    (OpenVINO from ONNX) reuses that file instead of writing it again.
    """

    model: nn.Module  # fused, eval, no gradients; fp16 with `half`
    example: torch.Tensor  # (batch, 3, h, w) zeros of the export's batch, size and dtype
    metadata: ModelMetadata
    weights: Path  # the checkpoint exported: every output is written beside it
    opset: int = DEFAULT_OPSET
    dynamic: bool = False  # free batch, height and width
    simplify: bool = False  # run onnxsim over the ONNX graph, where it is installed
    half: bool = False
    written: dict[str, Path] = field(default_factory=dict)
