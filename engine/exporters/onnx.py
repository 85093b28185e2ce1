"""ONNX export (layout in engine/export.py), written with the TorchScript-based exporter (`dynamo=False`).

The torch.export-based exporter, the default since torch 2.9, needs the onnxscript package, which this project
does not depend on; the traced exporter handles our graphs and their `dynamic_axes` exactly (every config is
tested at two sizes). `onnx` and `onnxruntime` are imported where they are used: they are this format's
packages, which the format table checks with a one-line error before anything here runs.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.onnx import _constants  # private, but the only place torch states its highest opset

from engine.exporters.job import DEFAULT_OPSET, ExportJob
from utils.errors import OptionError
from utils.native_output import native_output_kept_on_success

if TYPE_CHECKING:
    import onnx

MIN_OPSET = 9  # nearest upsampling (every neck has it) fails to export below 9: "upsample_nearest2d ... indexing"
DYNAMIC_AXES = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}


def max_opset() -> int:
    """The highest opset the installed torch's TorchScript-based ONNX exporter writes (20 in torch 2.9-2.14)."""
    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))  # 20 where torch does not say


def check_opset(opset: int) -> int:
    """`opset` if this torch can write it and our layers export at it; otherwise a one-line OptionError naming
    --opset and the range accepted (torch would print its whole IR graph before failing)."""
    high = max_opset()
    if not MIN_OPSET <= opset <= high:
        raise OptionError(
            f"--opset {opset}: use {MIN_OPSET}-{high} (default {DEFAULT_OPSET}); the ONNX exporter of the installed "
            f"torch {torch.__version__.split('+')[0]} writes opsets up to {high}, and nearest upsampling needs "
            f">= {MIN_OPSET}"
        )
    return opset


def check_onnx_options(job: ExportJob) -> None:
    """Refuse what the ONNX exporter cannot write (before any format is written): an opset out of range."""
    check_opset(job.opset)


def export_onnx(job: ExportJob, path: Path) -> Path:
    """Write an ONNX file, checked by onnx.checker, simplified with --simplify, metadata attached."""
    import onnx

    # A failing export prints its whole TorchScript IR graph from C++ before raising: the exception is the message.
    with warnings.catch_warnings(), native_output_kept_on_success():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and TracerWarnings
        torch.onnx.export(
            job.model,
            (job.example,),
            str(path),
            dynamo=False,
            opset_version=job.opset,
            do_constant_folding=True,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=DYNAMIC_AXES if job.dynamic else None,
        )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    if job.simplify:
        graph = _simplify(graph)
    for key, value in job.metadata.to_strings().items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))
    return path


def _simplify(graph: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's graph (constants folded, shape ops and redundant nodes removed): onnxsim's maintained successor,
    which ultralytics moved to; a package of this format's own (requirements.txt), imported where it is used."""
    import onnxslim

    return onnxslim.slim(graph)


def fp32_onnx(job: ExportJob) -> Path:
    """This export's graph as an fp32 ONNX file, for the formats built from one (OpenVINO, int8): the file the onnx
    format wrote when it is that, else one written into the job's scratch directory (removed after the export)."""
    written = job.written.get("onnx")
    fp32 = job.example.dtype == torch.float32
    if written is not None and fp32 and not job.int8:
        return written
    path = (job.scratch / job.weights.stem if job.scratch else job.weights).with_suffix(".onnx")
    if job.scratch is None or not path.exists():  # in scratch: written by this export, for its other formats
        if not fp32:  # an fp16 CUDA export: OpenVINO takes fp32 graphs and compresses the weights itself
            job = dataclasses.replace(job, model=copy.deepcopy(job.model).float(), example=job.example.float())
        export_onnx(job, path)
    return path


def fp16_unverifiable(job: ExportJob) -> str | None:
    """Why an fp16 ONNX file cannot be run here to check it (onnxruntime's CPU provider has no fp16 kernels)."""
    if not job.half:
        return None
    import onnxruntime as ort  # this format's package (see above)

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return None
    return "this onnxruntime has no CUDA provider to run fp16 models (pip install onnxruntime-gpu)"
