"""`python models/yolo.py` prints the layer table, the summary line and, with --fuse, the fused check; the scripts
turn a UserError into one `error:` line and let every other exception keep its traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import detect
import export
import models.yolo
import train
import val
from dataio.data_config import DataConfigError, DataConfigNotFoundError, load_data_config
from dataio.sources import DatasetSourceError
from engine.formats import MissingPackageError, WeightsNotFoundError, load_backend
from engine.hyperparameters import HyperparameterError
from engine.imgsz import check_imgsz
from engine.metadata import ModelFileError, ModelMetadata
from engine.sources import SourceError
from engine.train_setup import TrainingError
from engine.weights import NoWeightsError
from models.backbones.levels import OptionalDependencyError
from models.backbones.weights import BackboneWeightsError, BackboneWeightsNotFoundError
from models.config import ConfigError
from utils.checkpoint import CheckpointError
from utils.cli import USER_ERRORS
from utils.errors import OptionError, StorageError, UnsafePathError, UserError
from utils.torch_utils import select_device

ROOT = Path(__file__).resolve().parent.parent


def test_model_summary_cli() -> None:
    result = subprocess.run(
        [sys.executable, "models/yolo.py", "--cfg", "yolo11n.yaml", "--nc", "3", "--imgsz", "128", "--fuse"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(re.match(r"\s+from\s+n\s+params\s+module\s+arguments", line) for line in lines)
    assert any(re.match(r"\s+23\s+\[16, 19, 22\]\s+1\s+[\d,]+\s+Detect", line) for line in lines)
    assert re.fullmatch(r"yolo11n summary: \d+ layers, [\d,]+ parameters, [\d.]+ GFLOPs", lines[-3])
    assert lines[-2].startswith("yolo11n (fused) summary:")
    difference = float(re.fullmatch(r"max \|fused - unfused\| = (\S+)", lines[-1]).group(1))
    assert difference <= 1e-4


def test_cli_reports_bad_config(capfd: pytest.CaptureFixture) -> None:
    # in-process: test_model_summary_cli runs the script itself; a second interpreter would only repeat the imports
    assert models.yolo.main(["--cfg", "no_such_model.yaml"]) == 2
    captured = capfd.readouterr()
    assert "no_such_model.yaml" in captured.out + captured.err


# -- user errors and bugs told apart: UserError is one `error:` line, anything else keeps its traceback ----------
PROJECT_ERRORS = [
    ConfigError,
    DataConfigError,
    DataConfigNotFoundError,
    DatasetSourceError,
    HyperparameterError,
    SourceError,
    NoWeightsError,
    TrainingError,
    MissingPackageError,
    OptionalDependencyError,
    BackboneWeightsError,
    BackboneWeightsNotFoundError,
    CheckpointError,
    ModelFileError,
    WeightsNotFoundError,
    OptionError,
    UnsafePathError,
    StorageError,
]
# script module, the name of the library call its main() makes
SCRIPT_CALLS = [(train, "train"), (val, "run_val"), (detect, "detect"), (export, "export")]


def test_every_user_facing_error_is_a_user_error() -> None:
    for error in PROJECT_ERRORS:
        assert issubclass(error, UserError), error
    assert (UserError,) == USER_ERRORS
    assert not issubclass(ValueError, USER_ERRORS) and not issubclass(OSError, USER_ERRORS)


@pytest.mark.parametrize(("script", "call"), SCRIPT_CALLS, ids=[c for _, c in SCRIPT_CALLS])
@pytest.mark.parametrize("bug", [ValueError("a bug"), OSError(28, "No space left on device"), KeyError("k")])
def test_a_bug_keeps_its_traceback(script, call: str, bug: Exception, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise bug

    monkeypatch.setattr(script, call, fail)
    with pytest.raises(type(bug)):  # not turned into `error:`: the interpreter prints the traceback
        script.main(["--project", "unused"] if script in (train, val, detect) else [])


@pytest.mark.parametrize(("script", "call"), SCRIPT_CALLS, ids=[c for _, c in SCRIPT_CALLS])
def test_a_user_error_is_one_line(script, call: str, monkeypatch, capsys) -> None:
    def fail(*args, **kwargs):
        raise DataConfigError("data.yaml: missing key 'names'")

    monkeypatch.setattr(script, call, fail)
    assert script.main([]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: data.yaml: missing key 'names'"]


def test_bad_input_on_the_script_paths_raises_user_errors(tmp_path: Path) -> None:
    """Inputs that used to raise plain ValueError/FileNotFoundError (caught by the old catch-all)."""
    for bad in (
        lambda: load_data_config(str(tmp_path / "absent.yaml")),
        lambda: load_backend(tmp_path / "absent.pt"),
        lambda: load_backend(tmp_path / "model.xyz"),
        lambda: select_device("gpu7"),
        lambda: check_imgsz([1, 2, 3], 32),
        lambda: ModelMetadata.from_json("{not json", "m.onnx"),
    ):
        with pytest.raises(UserError):
            bad()
