"""Our side of the latency table: every config under cfg/ (random weights, nc=80), eager unfused and fused, and
each exported format, written by export() exactly as `python export.py` writes it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from benchmarks.suite.runners import Runner, runner_for, torch_runner
from dataio.data_config import load_data_config
from engine.export import export
from models.checkpoint_model import model_from_checkpoint
from models.config import available_configs, read_yaml, scaled_config_name
from models.detection_model import DetectionModel
from models.summary import count_parameters, gflops
from utils.checkpoint import save_checkpoint

EXPORT_FORMATS = ("torchscript", "onnx", "openvino")  # export.py --include names timed by default
INT8_FORMATS = ("onnx", "openvino")  # written quantized by export(int8=True), timed as "onnx int8", "openvino int8"


def config_names(scales: tuple[str, ...] = ("n",)) -> list[str]:
    """Every config under cfg/ by the name users pass: scaled files at each of `scales` (yolo11_mobileone.yaml at
    n is yolo11n_mobileone.yaml), the others as they are."""
    names = []
    for path in available_configs():
        if read_yaml(path).get("scales"):
            names += [scaled_config_name(path, scale) for scale in scales]
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
    agreement: dict[str, float] = field(default_factory=dict)  # int8 format -> agreement with the fp32 model


def data_with_names(data: str, names: dict[int, str], path: Path) -> Path:
    """A copy of dataset YAML `data` (paths made absolute) that names `names` as its classes: the int8 export checks
    a model's classes against its data's, and a random-weights model has 80 while the bundled data has one (its
    labels, class 0, stay valid)."""
    config = load_data_config(data)
    path.write_text(yaml.safe_dump({"train": config.train, "val": config.val, "names": dict(names)}))
    return path


def build_candidate(
    config: str,
    imgsz: int,
    workdir: Path,
    formats: tuple[str, ...] = EXPORT_FORMATS,
    int8_data: str | None = None,
    calib_images: int = 32,
) -> Candidate:
    """`config` with random weights (seeded), or a trained checkpoint (a .pt path), written in `workdir` and exported
    to `formats` beside it; with `int8_data`, also to int8 ONNX and OpenVINO calibrated on that dataset.

    Random weights detect nothing in particular, so their int8 agreement is recorded, not enforced; a trained
    checkpoint's is the figure that matters."""
    torch.manual_seed(0)
    model = model_from_checkpoint(config).eval() if config.endswith(".pt") else DetectionModel(config).eval()
    image = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
    fused = copy.deepcopy(model).fuse().eval()
    candidate = Candidate(config, count_parameters(fused), gflops(fused, imgsz))
    candidate.runners["eager"] = torch_runner(model, image)
    candidate.runners["eager fused"] = torch_runner(fused, image)
    weights = save_checkpoint(workdir / f"{Path(config).stem}.pt", model)
    exports = export(weights, list(formats), imgsz=imgsz, latency_runs=1) if formats else []
    if int8_data:
        if not config.endswith(".pt"):  # random weights: the data's images under the model's 80 class names
            int8_data = str(data_with_names(int8_data, model.names, workdir / f"{Path(config).stem}_int8_data.yaml"))
        exports += export(
            weights, list(INT8_FORMATS), imgsz=imgsz, int8=True, data=int8_data, calib_images=calib_images,
            accept_low_agreement=True, latency_runs=1,
        )  # fmt: skip
    for result in exports:
        name = f"{result.format} int8" if result.accuracy is not None else result.format
        if result.ok:
            candidate.runners[name] = runner_for(result.path, image)
            if result.accuracy is not None:
                candidate.agreement[name] = result.accuracy.agreement
        else:
            candidate.errors[name] = result.error
    return candidate
