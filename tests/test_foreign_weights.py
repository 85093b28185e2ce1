"""Issue 12, item 1: YOLOv5 and ultralytics checkpoints import without running anything from the file.

The fixtures under tests/fixtures/foreign/ were written by the reference packages themselves
(tests/fixtures/make_foreign_checkpoints.py, run in a separate environment), with their eval-mode outputs.
"""

from __future__ import annotations

import builtins
import io
import pickle
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

import val as val_script
from engine.api import Detector
from engine.model import YOLO
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from models.checkpoint_model import model_from_checkpoint, read_weights
from models.foreign_checkpoint import is_foreign_model
from tests.helpers import PAYLOAD_MARKER, SystemPayload
from tests.synthetic_data import make_synthetic_dataset
from tools import convert_weights as convert_script
from utils.checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint
from utils.restricted_unpickler import ForeignObject, RestrictedUnpickler, load_restricted, placeholder_class

FIXTURES = Path(__file__).parent / "fixtures" / "foreign"
YOLOV5 = FIXTURES / "yolov5n_nc3.pt"  # YOLOv5n, nc=3, as yolov5's train.py leaves best.pt (stripped, fp16)
YOLO11 = FIXTURES / "yolo11_w0125_nc3.pt"  # YOLO11 at width 0.125, nc=3, as ultralytics writes last.pt (EMA)
YOLO11_FUSED = FIXTURES / "yolo11_w0125_nc3_fused.pt"  # the same after ultralytics' fuse(): no BatchNorm
MARKER = PAYLOAD_MARKER


class _Exec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_payloads_become_placeholders_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / MARKER
    payloads = {"system": SystemPayload(marker), "exec": _Exec(marker), "model": nn.Conv2d(3, 4, 1)}
    for payload, probe in ((SystemPayload, "probe_system"), (_Exec, "probe_exec")):  # live when unpickled normally
        pickle.loads(pickle.dumps(payload(tmp_path / probe)))
        assert (tmp_path / probe).exists()

    torch.save(payloads, tmp_path / "evil.pt")
    loaded = load_restricted(tmp_path / "evil.pt")
    assert loaded["system"].foreign_name == "posix.system" and loaded["system"].args == (f"touch '{marker}'",)
    assert loaded["exec"].foreign_name == "builtins.exec"
    conv = loaded["model"]
    assert isinstance(conv, ForeignObject) and conv.foreign_name == "torch.nn.modules.conv.Conv2d"
    assert torch.equal(conv.attributes["_parameters"]["weight"], payloads["model"].weight)  # tensors are real
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):  # a plain pickle: placeholders too, any protocol
        plain = RestrictedUnpickler(io.BytesIO(pickle.dumps([SystemPayload(marker), _Exec(marker)], protocol))).load()
        assert [p.foreign_name for p in plain] == ["posix.system", "builtins.exec"]
    # find_class never imports: a module that prints on import, and one that does not exist
    for module in ("this", "no_such_module_anywhere"):
        opcodes = f"c{module}\nThing\n)R.".encode()  # GLOBAL module.Thing, empty tuple, REDUCE: Thing()
        assert RestrictedUnpickler(io.BytesIO(opcodes)).load().foreign_name == f"{module}.Thing"
        assert module not in sys.modules

    (tmp_path / "plain.pt").write_bytes(pickle.dumps(payloads))
    for name in ("evil.pt", "plain.pt"):  # through the loader every script uses: refused in one line
        with pytest.raises(CheckpointError, match=name):
            read_weights(tmp_path / name)
    assert not marker.exists(), "a payload ran"


@pytest.mark.parametrize(
    "path, config, scale, package",
    [
        (YOLOV5, "yolov5.yaml", "n", "yolov5"),
        (YOLO11, "yolo11.yaml", "custom", "ultralytics"),
        (YOLO11_FUSED, "yolo11.yaml", "custom", "ultralytics"),
    ],
    ids=["yolov5", "ultralytics", "ultralytics-fused"],
)
def test_fixture_matches_reference_outputs(
    path: Path, config: str, scale: str, package: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(CheckpointError, match="pickles Python objects"):  # not one of ours
        load_checkpoint(path)
    model = model_from_checkpoint(path).eval()
    report = capsys.readouterr().out
    assert f"({package} DetectionModel" in report and "nothing unmatched" in report
    assert f"as {config} ({scale})" in report
    reference = torch.load(path.with_suffix(".reference.pt"), weights_only=True)
    with torch.no_grad():
        output = model(reference["input"])
    assert output.shape == reference["output"].shape
    assert _relative_error(output, reference["output"]) <= 1e-4
    assert model.nc == 3 and model.names == {i: f"{'v5' if package == 'yolov5' else 'u8'}class{i}" for i in range(3)}
    assert model.yaml["yaml_file"] == config and model.yaml["scale"] == scale
    assert model.is_fused == (path == YOLO11_FUSED)
    if path != YOLO11_FUSED:  # a trainer's checkpoint records its image size: inference defaults to it
        assert model.train_args == {"imgsz": 64}


@pytest.mark.parametrize(
    "name, package",
    [
        ("models.yolo.DetectionModel", "yolov5"),  # the yolov5 repository's releases (v6.2+)
        ("models.yolo.Model", "yolov5"),  # v6.0-6.1
        ("yolov5.models.yolo.DetectionModel", "yolov5"),  # the yolov5 pip package
        ("ultralytics.nn.tasks.DetectionModel", "ultralytics"),
        ("posix.system", None),
    ],
)
def test_model_classes_recognised(name: str, package: str | None) -> None:
    assert is_foreign_model(placeholder_class(name)()) == (package is not None)


def test_python_api_takes_their_file() -> None:
    detector = Detector(str(YOLO11), conf_thres=0.01)
    image = torch.load(YOLO11.with_suffix(".reference.pt"), weights_only=True)["input"][0]
    bgr = (image.permute(1, 2, 0).flip(-1) * 255).byte().numpy()
    (result,) = detector.predict(bgr)
    assert detector.names == {i: f"u8class{i}" for i in range(3)} and len(result.boxes) > 0
    model = YOLO(str(YOLOV5))  # the model object reads weights through the same loader
    assert model.model.names == {i: f"v5class{i}" for i in range(3)} and model.model.yaml["scale"] == "n"


def test_convert_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "converted.pt"
    assert convert_script.main([str(YOLOV5), str(target)]) == 0
    ckpt = load_checkpoint(target)  # weights-only
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["imported_from"].startswith(YOLOV5.name)
    reference = torch.load(YOLOV5.with_suffix(".reference.pt"), weights_only=True)
    with torch.no_grad():
        output = model_from_checkpoint(target).eval()(reference["input"])
    assert _relative_error(output, reference["output"]) <= 1e-4
    assert convert_script.main([str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2
    assert capsys.readouterr().err.strip().endswith("missing.pt")


class _Stop(Exception):
    pass


def test_fine_tune_with_other_class_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No --cfg: the file's own model (YOLO11 at its width), for the data's 2 classes; everything but the class
    outputs transferred, and one optimiser step trains."""
    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=2, imgsz=64, nc=2)
    imported = model_from_checkpoint(YOLO11)
    at_start: dict[str, torch.Tensor] = {}

    def record(trainer: Trainer) -> None:
        at_start.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    def stop(trainer: Trainer) -> None:
        raise _Stop

    options = TrainOptions(
        weights=str(YOLO11), data=str(data), imgsz=64, epochs=1, batch_size=2, project=str(tmp_path), noplots=True
    )
    trainer = Trainer(options, callbacks={"before_train": [record], "after_optimizer_step": [stop]})
    capsys.readouterr()
    with pytest.raises(_Stop):
        trainer.train()
    out = capsys.readouterr().out
    assert trainer.ema.updates == 1
    source = imported.state_dict()
    fresh = sorted(k for k, v in at_start.items() if not (k in source and source[k].shape == v.shape))
    head = len(imported.model) - 1
    assert fresh == [f"model.{head}.cls_convs.{i}.2.{p}" for i in range(3) for p in ("bias", "weight")]
    assert all(torch.equal(at_start[k], source[k]) for k in source if k not in fresh)
    assert f"Transferred {len(source) - len(fresh)}/{len(source)} tensors" in out
    assert trainer.model.nc == 2 and trainer.model.yaml["scales"] == {"custom": [0.5, 0.125, 1024.0]}


def test_unknown_architecture_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A checkpoint pickled by 'ultralytics' (a stand-in module here) whose config has a layer we do not build."""
    tasks = types.ModuleType("ultralytics.nn.tasks")

    class DetectionModel(nn.Module):
        pass

    DetectionModel.__module__, DetectionModel.__qualname__ = tasks.__name__, "DetectionModel"
    tasks.DetectionModel = DetectionModel
    for name in ("ultralytics", "ultralytics.nn"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, tasks.__name__, tasks)
    model = DetectionModel()
    model.model = nn.Sequential(nn.Conv2d(3, 8, 3))
    model.yaml = {"nc": 3, "backbone": [[-1, 1, "Conv", [64, 3, 2]], [-1, 3, "C2f", [128, True]]], "head": []}
    torch.save({"model": model, "ema": None}, tmp_path / "yolov8n.pt")
    monkeypatch.undo()

    status = val_script.main(["--weights", str(tmp_path / "yolov8n.pt"), "--project", str(tmp_path / "runs")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert "yolov8n.pt" in lines[0] and "architecture this project cannot build" in lines[0]
    assert "differs at their row 1" in lines[0]
