"""Export: TorchScript and ONNX round trips against PyTorch, every config in cfg/ through dynamic ONNX at two
sizes, bad options, and export.py without --weights. (Fixed-batch export, simplified and to OpenVINO, is in
test_backends.py, which shares that export; OpenVINO, --half on CPU, int8 and --simplify in test_export_int8.py.)"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import onnxruntime as ort
import pytest
import torch

from engine.export import export
from engine.exporters.job import DEFAULT_OPSET, ExportJob
from engine.exporters.onnx import MIN_OPSET, export_onnx, max_opset
from engine.metadata import ModelMetadata
from export import main as export_main
from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from tests.engine_helpers import shared_checkpoint, shared_exports
from tests.helpers import case_id, config_cases
from utils.compare import relative_max_difference
from utils.native_output import native_output_kept_on_success

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
    fused = copy.deepcopy(model).fuse()
    meta = ModelMetadata.from_model(fused, imgsz=[64, 64], dynamic=True)
    job = ExportJob(fused, torch.zeros(1, 3, 64, 64), meta, tmp_path / "model.pt", dynamic=True)
    path = export_onnx(job, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:
        images = torch.rand(shape)
        with torch.no_grad():
            expected = model(images)  # unfused: the export must equal what was trained
        (output,) = session.run(None, {"images": images.numpy()})
        assert output.shape == tuple(expected.shape)
        assert relative_max_difference(expected, output) <= 1e-4, shape


def test_bad_options() -> None:
    weights = shared_checkpoint("yolo11n.yaml")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--half exports fp16 models and needs a CUDA device"):
            export(weights, ["onnx"], imgsz=64, half=True, device="cpu")
    with pytest.raises(ValueError, match="unknown format"):
        export(weights, ["tflite"], imgsz=64)
    with pytest.raises(ValueError, match="--batch must be >= 1"):
        export(weights, ["onnx"], batch=0)


def test_export_without_weights_uses_newest_best(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    # nothing trained yet: says how to train one (test_detect.py runs a script as a subprocess)
    assert export_main(["--runs-dir", str(runs), "--include", "onnx"]) == 2
    assert "python train.py --cfg yolov5s_mobileone.yaml" in capsys.readouterr().err

    older, newer = runs / "train" / "exp" / "weights" / "best.pt", runs / "train" / "exp2" / "weights" / "best.pt"
    for path in (older, newer):
        path.parent.mkdir(parents=True)
        path.write_bytes(shared_checkpoint("yolo11n.yaml").read_bytes())
    os.utime(older, (time.time() + 60, time.time() + 60))  # exp is the newest despite its name
    assert export_main(["--runs-dir", str(runs), "--include", "onnx", "--imgsz", "64"]) == 0
    out = capsys.readouterr().out
    assert f"using the newest trained model {older}" in out and "latency ms" in out
    assert older.with_suffix(".onnx").is_file() and not newer.with_suffix(".onnx").exists()


# -- bad input to export.py: one `error:` line on stderr naming the argument ----------------------------------
class _Pickled:
    """Stands for a model class another framework pickles into its checkpoints."""


def _error_line(capfd: pytest.CaptureFixture, argv: list[str]) -> str:
    assert export_main(argv) == 2
    captured = capfd.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err[-2000:]
    assert "graph(" not in captured.out + captured.err and "weights_only=False" not in captured.out + captured.err
    return err[0]


def test_export_bad_input_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    weights = str(shared_checkpoint("yolov5n.yaml"))
    line = _error_line(capfd, ["--weights", weights, "--include", "onnx", "--opset", "25", "--imgsz", "64"])
    assert line == (
        f"error: --opset 25: use {MIN_OPSET}-{max_opset()} (default {DEFAULT_OPSET}); the ONNX exporter of the "
        f"installed torch {torch.__version__.split('+')[0]} writes opsets up to {max_opset()}, and nearest "
        f"upsampling needs >= {MIN_OPSET}"
    )

    onnx_file = shared_exports("yolov5n.yaml")["onnx"]  # an export given where its checkpoint belongs
    line = _error_line(capfd, ["--weights", str(onnx_file), "--include", "onnx"])
    assert line.startswith(f"error: --weights {onnx_file}: export.py takes a .pt checkpoint of this project")
    assert line.endswith(f"{onnx_file.name} is an ONNX export")

    renamed = tmp_path / "scripted.pt"  # a TorchScript export renamed to .pt
    renamed.write_bytes(shared_exports("yolov5n.yaml")["torchscript"].read_bytes())
    line = _error_line(capfd, ["--weights", str(renamed), "--include", "onnx"])
    assert line == f"error: --weights {renamed} is not a checkpoint of this project: it is a TorchScript archive " + (
        "(an export, not a checkpoint)"
    )

    foreign = tmp_path / "foreign.pt"  # another framework's checkpoint: a pickled model object, read as a placeholder
    torch.save({"model": _Pickled()}, foreign)
    line = _error_line(capfd, ["--weights", str(foreign), "--include", "onnx"])
    expected = f"error: --weights {foreign} is neither a checkpoint of this project nor a YOLOv5 / ultralytics one: "
    assert line.startswith(expected + "its model is a ") and line.endswith("_Pickled")


@pytest.mark.filterwarnings("ignore::UserWarning")  # the exporter's notes on opset 8 itself
def test_failed_onnx_export_prints_no_ir_graph(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    """Below opset 9 nearest upsampling fails to export; torch then dumps its IR graph from C++ unless kept off."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Upsample(scale_factor=2.0)).eval()
    with pytest.raises(Exception, match="upsample_nearest2d"), native_output_kept_on_success():
        torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(tmp_path / "m.onnx"), dynamo=False, opset_version=8)
    captured = capfd.readouterr()
    assert "graph(" not in captured.out + captured.err and not captured.out.strip(), captured.out[:300]

    with native_output_kept_on_success():  # what a successful block prints is kept, in order
        print("python says", flush=True)
        os.write(1, b"native says\n")
    assert capfd.readouterr().out == "python says\nnative says\n"
