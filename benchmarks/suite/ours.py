"""Our side of the latency table: every config under cfg/ (random weights, nc=80), eager unfused and fused, and
each exported format, written by export() exactly as `python export.py` writes it."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.suite.runners import Runner, runner_for, torch_runner
from engine.export import export
from models.config import available_configs, read_yaml
from models.detection_model import DetectionModel
from models.summary import count_parameters, gflops
from utils.checkpoint import save_checkpoint

EXPORT_FORMATS = ("torchscript", "onnx", "openvino")  # export.py --include names timed by default
_SCALED = re.compile(r"^(?P<base>.*?\d+)(?P<rest>.*)$")  # yolo11_mobileone -> yolo11 + _mobileone


def config_names(scales: tuple[str, ...] = ("n",)) -> list[str]:
    """Every config under cfg/ by the name users pass: scaled files at each of `scales` (yolo11_mobileone.yaml at
    n is yolo11n_mobileone.yaml), the others as they are."""
    names = []
    for path in available_configs():
        if read_yaml(path).get("scales"):
            match = _SCALED.match(path.stem)
            names += [f"{match['base']}{scale}{match['rest']}.yaml" for scale in scales]
        else:
            names.append(path.name)
    return names


@dataclass
class Candidate:
    """One config's model: its size and one runner per format."""

    config: str
    parameters: int
    gflops: float
    runners: dict[str, Runner] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # format -> why it could not be timed


def build_candidate(config: str, imgsz: int, workdir: Path, formats: tuple[str, ...] = EXPORT_FORMATS) -> Candidate:
    """Random weights (seeded), written as a checkpoint in `workdir` and exported to `formats` beside it."""
    torch.manual_seed(0)
    model = DetectionModel(config).eval()
    image = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    fused = copy.deepcopy(model).fuse().eval()
    candidate = Candidate(config, count_parameters(fused), gflops(fused, imgsz))
    candidate.runners["eager"] = torch_runner(model, image)
    candidate.runners["eager fused"] = torch_runner(fused, image)
    if formats:
        weights = save_checkpoint(workdir / f"{Path(config).stem}.pt", model)
        for result in export(weights, list(formats), imgsz=imgsz, latency_runs=1):
            if result.ok:
                candidate.runners[result.format] = runner_for(result.path, image)
            else:
                candidate.errors[result.format] = result.error
    return candidate
