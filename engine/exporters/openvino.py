"""OpenVINO export: the ONNX graph converted to OpenVINO IR, in a `<name>_openvino_model/` directory."""

from __future__ import annotations

from pathlib import Path

from engine.exporters.job import ExportJob
from engine.exporters.onnx import export_onnx


def export_openvino(job: ExportJob, directory: Path) -> Path:
    """Convert this export's ONNX file (written now if the export did not include ONNX) to IR in `directory`,
    with metadata.json beside the .xml and .bin."""
    import openvino as ov  # a package of this format's own, checked by the format table before this runs

    onnx_path = job.written.get("onnx") or export_onnx(job, job.weights.with_suffix(".onnx"))
    directory.mkdir(parents=True, exist_ok=True)
    xml = directory / onnx_path.with_suffix(".xml").name
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=job.half)
    (directory / "metadata.json").write_text(job.metadata.to_json())
    return directory
