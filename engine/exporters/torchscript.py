"""TorchScript export: the traced deploy model with its metadata in `_extra_files["metadata.json"]`."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from engine.exporters.job import ExportJob


def export_torchscript(job: ExportJob, path: Path) -> Path:
    """Trace the model (a traced graph follows input shapes, so it serves --dynamic too) and save it with metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python values from constant strides
        traced = torch.jit.trace(job.model, job.example, strict=False, check_trace=False)  # export() verifies it
    traced.save(str(path), _extra_files={"metadata.json": job.metadata.to_json()})
    return path
