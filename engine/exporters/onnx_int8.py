"""int8 ONNX export: onnxruntime's static quantization of the fp32 graph in QDQ form (QuantizeLinear /
DequantizeLinear pairs around int8 weights and uint8 activations, which onnxruntime's CPU provider fuses into
integer kernels), calibrated on the job's images, with the head's decode left in floating point.

Weights are int8 per output channel (a conv's channels differ in range by orders of magnitude after BatchNorm
folding), activations uint8 with a zero point (SiLU outputs are not centred on zero), MinMax calibration, and
`reduce_range` (7-bit weights): on AVX2 without VNNI, onnxruntime's u8 x s8 kernels add pairs of products in 16
bits (VPMADDUBSW), which saturate with full-range weights. Measured on the trees yolov5n (32 calibration
images, benchmarks/results/int8_deploy.md): agreement with fp32 0.753 without it, 0.868 with it; uint8 weights
(no saturation) reach 0.893 but run no faster than fp32 there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.exporters.decode_scope import onnx_decode_nodes
from engine.exporters.job import ExportJob
from engine.exporters.onnx import fp32_onnx
from engine.exporters.quiet import quiet_quantizers

if TYPE_CHECKING:
    import onnx


def export_onnx_int8(job: ExportJob, path: Path) -> Path:
    """Quantize this export's fp32 ONNX graph into `path`, metadata attached."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        """onnxruntime's calibration interface over the job's calibration batches."""

        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(job.calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    graph = onnx.load(str(fp32_onnx(job)))
    _inline_identity_initializers(graph.graph)
    with quiet_quantizers():
        quantize_static(
            graph,
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            # onnxruntime's QDQ rounds a quantized node's output: the prediction convs stay float too, so the raw
            # maps reach the decode unrounded (NNCF quantizes inputs only: the OpenVINO IR needs no such step)
            nodes_to_exclude=onnx_decode_nodes(graph.graph, job.decode_weights, with_convs=True),
        )
    quantized = onnx.load(str(path))
    del quantized.metadata_props[:]
    for key, value in job.metadata.to_strings().items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(quantized, str(path))
    return path


def _inline_identity_initializers(graph: onnx.GraphProto) -> None:
    """Replace `Identity(initializer)` nodes with a copy of the initializer under the output's name.

    torch's exporter writes a parameter equal to an earlier one (the zero biases of fresh layers) as an Identity of
    it; onnxruntime's quantizer then finds no initializer for that conv's bias and leaves the bias in float, so the
    conv cannot run as an integer kernel.
    """
    import onnx

    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers]:
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[node.input[0]])
        copy.name = node.output[0]
        graph.initializer.append(copy)
        graph.node.remove(node)
