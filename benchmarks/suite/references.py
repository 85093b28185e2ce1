"""The reference packages' own models for `--compare`: the `yolov5` package's yolov5n/yolov5s and ultralytics'
YOLO11n, fused, timed in the same process as ours. They are never dependencies: run the suite with the python that
`bash ../shared/tools/peer-venv.sh` prints (it holds both) and they are found; otherwise they are left out, said so.

Their ONNX files are written with torch.onnx.export at the opset our exporter uses, with each head in its own
export mode (the decoded (1, N, 85) / (1, 84, N) output), the same graph their exporters trace.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.exporters.job import DEFAULT_OPSET

# the config of ours each reference model equals, layer for layer
REFERENCE_OF = {"yolov5n.yaml": "yolov5 package", "yolov5s.yaml": "yolov5 package", "yolo11n.yaml": "ultralytics"}


@dataclass
class ReferenceModel:
    package: str  # "yolov5 package" or "ultralytics"
    config: str  # our equivalent config
    model: torch.nn.Module  # fused, eval, head in export mode
    version: str


def _yolov5_source_on_path() -> bool:
    """The peer environment keeps the yolov5 package as source (PEER_YOLOV5_PATH or beside the interpreter)."""
    for candidate in (os.environ.get("PEER_YOLOV5_PATH"), str(Path(sys.prefix) / "yolov5-src")):
        if candidate and (Path(candidate) / "yolov5").is_dir() and candidate not in sys.path:
            sys.path.insert(0, candidate)
    return importlib.util.find_spec("yolov5") is not None


def _build_yolov5(config: str) -> ReferenceModel:
    np.trapz = getattr(np, "trapz", np.trapezoid)  # yolov5 7.0 still calls np.trapz, removed in numpy 2
    import yolov5
    from yolov5.models.yolo import Model

    torch.manual_seed(0)
    model = Model(str(Path(yolov5.__file__).parent / "models" / config)).eval().fuse()
    model.model[-1].export = True  # the decoded output alone, as their ONNX export writes it
    return ReferenceModel("yolov5 package", config, model, getattr(yolov5, "__version__", "?"))


def _build_ultralytics(config: str) -> ReferenceModel:
    import ultralytics
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(config, nc=80, verbose=False).eval().fuse(verbose=False)
    model.model[-1].export, model.model[-1].format = True, "onnx"
    return ReferenceModel("ultralytics", config, model, ultralytics.__version__)


def available_references(configs: list[str], say: Callable[[str], None] = print) -> list[ReferenceModel]:
    """The reference models of those `configs` that have one, for each package that can be imported here."""
    builders = {"yolov5 package": (_yolov5_source_on_path, _build_yolov5), "ultralytics": (None, _build_ultralytics)}
    found = []
    for config in configs:
        package = REFERENCE_OF.get(config)
        if package is None:
            continue
        prepare, build = builders[package]
        importable = prepare() if prepare else importlib.util.find_spec("ultralytics") is not None
        if not importable:
            say(f"--compare: {package} is not importable here, {config} is timed without it")
            continue
        found.append(build(config))
    return found


def export_reference_onnx(reference: ReferenceModel, imgsz: int, path: Path) -> Path:
    """Their fused model to ONNX (fp32, static batch 1), as their exporters trace it."""
    image = torch.zeros(1, 3, imgsz, imgsz)
    torch.onnx.export(
        reference.model,
        image,
        str(path),
        opset_version=DEFAULT_OPSET,
        input_names=["images"],
        output_names=["output0"],
        dynamo=False,
    )
    return path
