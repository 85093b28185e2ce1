"""OpenVINO export: the ONNX graph converted to OpenVINO IR, in a `<name>_openvino_model/` directory; with --half
its weights stored in fp16 (the CPU plugin runs it, unlike an fp16 ONNX); with --int8 quantized by NNCF.

`openvino` and `nncf` are imported where they are used: they are this format's packages, which the format table
checks with a one-line error before anything here runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.exporters.decode_scope import openvino_decode_ops
from engine.exporters.job import ExportJob
from engine.exporters.onnx import fp32_onnx
from engine.exporters.quiet import quiet_quantizers


def export_openvino(job: ExportJob, directory: Path) -> Path:
    """Convert this export's fp32 ONNX graph to IR in `directory` (fp16 weights with --half), with metadata.json
    beside the .xml and .bin."""
    import openvino as ov

    onnx_path = fp32_onnx(job)
    return _save(job, ov.convert_model(str(onnx_path)), directory, onnx_path.stem, compress_to_fp16=job.half)


def export_openvino_int8(job: ExportJob, directory: Path) -> Path:
    """NNCF post-training quantization of the IR on the job's calibration images (8-bit weights and activations;
    MIXED preset: symmetric weights, asymmetric activations, as SiLU outputs are not centred on zero), with the
    head's decode left in floating point (decode_scope.py)."""
    import nncf
    import openvino as ov

    onnx_path = fp32_onnx(job)
    model = ov.convert_model(str(onnx_path))
    ignored = nncf.IgnoredScope(names=openvino_decode_ops(model, job.decode_weights))
    with quiet_quantizers():
        quantized = nncf.quantize(
            model,
            nncf.Dataset(job.calibration),
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(job.calibration),
            fast_bias_correction=True,
            ignored_scope=ignored,
        )
    return _save(job, quantized, directory, onnx_path.stem, compress_to_fp16=False)


def _save(job: ExportJob, model: Any, directory: Path, stem: str, compress_to_fp16: bool) -> Path:
    import openvino as ov

    directory.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(directory / f"{stem}.xml"), compress_to_fp16=compress_to_fp16)
    (directory / "metadata.json").write_text(job.metadata.to_json())
    return directory
