"""Export: TorchScript and ONNX round trips against PyTorch, every config in cfg/ through dynamic ONNX at two
sizes, the options that need missing packages or a GPU, and export.py without --weights."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from engine.export import export, export_onnx
from engine.metadata import ModelMetadata
from export import main as export_main
from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from tests.engine_helpers import shared_checkpoint, shared_exports
from tests.helpers import case_id, config_cases
from utils.compare import relative_max_difference

ROOT = Path(__file__).resolve().parent.parent
CASES = config_cases()


@pytest.mark.parametrize("cfg", ["yolov5n.yaml", "yolo11n.yaml"], ids=["yolov5n", "yolo11n"])
def test_export_round_trip(cfg: str) -> None:
    files = shared_exports(cfg)
    for result in files["results"]:
        assert result.ok, result.error
        assert result.path.is_file() and result.size_mb > 0.1
        assert result.max_difference is not None and result.max_difference <= 1e-4
        assert result.latency_ms is not None and result.latency_ms > 0
    assert [r.format for r in files["results"]] == ["torchscript", "onnx"]


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_config_exports_to_dynamic_onnx(case: tuple[str, str | None], tmp_path: Path) -> None:
    cfg, scale = case
    model = randomize_batchnorm(DetectionModel(cfg, nc=2, scale=scale)).eval()
    fused = DetectionModel(cfg, nc=2, scale=scale).eval()
    fused.load_state_dict(model.state_dict())
    fused.fuse()
    meta = ModelMetadata.from_model(fused, imgsz=[64, 64], dynamic=True)
    path = export_onnx(fused, torch.zeros(1, 3, 64, 64), tmp_path / "model.onnx", meta, dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:
        images = torch.rand(shape)
        with torch.no_grad():
            expected = model(images)  # unfused: export must equal what was trained
        (output,) = session.run(None, {"images": images.numpy()})
        assert output.shape == tuple(expected.shape)
        assert relative_max_difference(expected, output) <= 1e-4, shape


def test_missing_packages_and_cpu_half_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(shared_checkpoint("yolo11n.yaml").read_bytes())
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--half exports fp16 models and needs a CUDA device"):
            export(weights, ["onnx"], imgsz=64, half=True, device="cpu")
    with pytest.raises(ValueError, match="unknown format"):
        export(weights, ["tflite"], imgsz=64)
    if importlib.util.find_spec("onnxsim") or importlib.util.find_spec("openvino"):
        pytest.skip("onnxsim or openvino is installed: the messages for their absence cannot be checked here")
    results = export(weights, ["onnx", "openvino"], imgsz=64, simplify=True, latency_runs=1)
    onnx_result, openvino_result = results
    assert onnx_result.ok and onnx_result.max_difference <= 1e-4  # written unsimplified, still correct
    assert not openvino_result.ok and "openvino package is not installed" in openvino_result.error
    out = capsys.readouterr().out
    assert "onnxsim package is not installed" in out and "pip install onnxsim" in out
    assert "openvino export failed" in out


def test_export_without_weights_uses_newest_best(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    # as a script, with nothing trained yet: says how to train one
    result = subprocess.run(
        [sys.executable, "export.py", "--runs-dir", str(runs), "--include", "onnx"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "python train.py --cfg yolov5s_mobileone.yaml" in result.stdout

    older, newer = runs / "train" / "exp" / "weights" / "best.pt", runs / "train" / "exp2" / "weights" / "best.pt"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
        path.write_bytes(shared_checkpoint("yolo11n.yaml").read_bytes())
    os.utime(older, (time.time() + 60, time.time() + 60))  # exp is the newest despite its name
    assert export_main(["--runs-dir", str(runs), "--include", "torchscript", "onnx", "--imgsz", "64"]) == 0
    out = capsys.readouterr().out
    assert f"using the newest trained model {older}" in out and "latency ms" in out
    assert older.with_suffix(".onnx").is_file() and older.with_suffix(".torchscript").is_file()
    assert not newer.with_suffix(".onnx").exists()
