"""The weights-format table: a format registered from Python appears in weights detection, load_backend, export()
and export.py's --include choices, and leaves with its entry; every entry's backend loads what its exporter
writes; a missing package is one line naming what to pip install."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.backends import TorchScriptBackend
from engine.export import export
from engine.export_options import ExportOptions
from engine.exporters.job import ExportJob
from engine.exporters.torchscript import export_torchscript
from engine.formats import (
    FORMATS,
    MissingPackageError,
    ModelFormat,
    Package,
    export_format_names,
    load_backend,
    register_format,
    weights_format,
)
from tests.engine_helpers import shared_checkpoint
from utils.cli import USER_ERRORS
from utils.options import parse_options


class FakeBackend(TorchScriptBackend):
    """Runs a `.fake` file, which is a TorchScript file by another name."""

    format = "fake"


def refuse_dynamic(job: ExportJob) -> None:
    if job.dynamic:
        raise ValueError("--dynamic: the fake format is fixed-size only")


FAKE = ModelFormat("fake", ".fake", FakeBackend, export_torchscript, check=refuse_dynamic)
NEEDS_MISSING = ModelFormat(
    "needs_missing",
    ".needsmissing",
    FakeBackend,
    export_torchscript,
    export_packages=(Package("no_such_module_for_tests", "no-such-package"),),
    run_packages=(Package("no_such_module_for_tests", "no-such-package"),),
)


@pytest.fixture
def fake_formats() -> Iterator[None]:
    """FAKE and NEEDS_MISSING in the table for one test; the table is left as it was found."""
    register_format(FAKE)
    register_format(NEEDS_MISSING)
    yield
    FORMATS.remove(FAKE.name)
    FORMATS.remove(NEEDS_MISSING.name)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A copy of the shared yolo11n checkpoint: exports are written beside it."""
    return Path(shutil.copy(shared_checkpoint("yolo11n.yaml"), tmp_path / "best.pt"))


def test_a_registered_format_is_detected_exported_and_loaded(fake_formats: None, weights: Path) -> None:
    assert weights_format("runs/best.fake") is FAKE
    assert "fake" in export_format_names()
    assert parse_options(ExportOptions, ["--include", "fake", "onnx"]).include == ["fake", "onnx"]

    (result,) = export(weights, ["fake"], imgsz=64, latency_runs=1)
    assert result.ok, result.error
    assert result.path == weights.with_suffix(".fake") and result.max_difference <= 1e-4  # checked via FakeBackend
    backend = load_backend(result.path, "cpu")
    assert type(backend) is FakeBackend and backend.imgsz == [64, 64]

    with pytest.raises(ValueError, match="fixed-size only"):  # the entry's check runs before anything is written
        export(weights, ["fake", "torchscript"], imgsz=64, dynamic=True, latency_runs=1)
    assert not weights.with_suffix(".torchscript").exists()


def test_a_missing_package_is_one_line_naming_pip(fake_formats: None, weights: Path) -> None:
    missing, written = export(weights, ["needs_missing", "torchscript"], imgsz=64, latency_runs=1)
    assert missing.error == (
        "MissingPackageError: needs_missing export: the no-such-package package is not installed "
        "(pip install no-such-package)"
    )
    assert written.ok, written.error  # the other formats go on
    renamed = Path(shutil.copy(written.path, weights.with_suffix(".needsmissing")))
    with pytest.raises(MissingPackageError, match=r"needsmissing: running needs_missing models: .*pip install") as e:
        load_backend(renamed, "cpu")
    assert isinstance(e.value, USER_ERRORS) and isinstance(e.value, ImportError)  # one `error:` line from a script


def test_a_removed_format_is_forgotten() -> None:
    entry = register_format(ModelFormat("fleeting", ".fleeting", FakeBackend, export_torchscript))
    assert weights_format("m.fleeting") is entry and "fleeting" in export_format_names()
    assert FORMATS.remove("fleeting") is entry
    with pytest.raises(ValueError, match="unknown weights format '.fleeting'"):
        weights_format("m.fleeting")
    assert "fleeting" not in export_format_names()
    with pytest.raises(SystemExit):
        parse_options(ExportOptions, ["--include", "fleeting"])


def test_a_suffix_has_one_format() -> None:
    with pytest.raises(ValueError, match="suffix .onnx is the onnx format's"):
        register_format(ModelFormat("onnx2", ".onnx", FakeBackend, export_torchscript))
    assert "onnx2" not in FORMATS


def test_every_entry_is_named_and_loaded_as_it_writes(weights: Path) -> None:
    """Each exportable entry's files are detected as that entry, and its backend loads what its exporter wrote
    (OpenVINO where the openvino package is installed; where not, its result names the package to install)."""
    names = export_format_names()
    assert {"torchscript", "onnx", "openvino"} <= set(names)
    for name in [*names, "pytorch"]:
        entry = FORMATS.get(name)
        assert weights_format(entry.output_path(Path("runs/best.pt"))) is entry, name

    results = export(weights, names, imgsz=64, latency_runs=1)
    assert [r.format for r in results] == names
    for result in results:
        entry = FORMATS.get(result.format)
        missing = [p.pip for p in entry.export_packages if importlib.util.find_spec(p.module) is None]
        if missing:
            assert not result.ok and f"pip install {missing[0]}" in result.error, result.error
            continue
        assert result.ok, result.error
        assert result.path == entry.output_path(weights) and result.max_difference <= 1e-4
        backend = load_backend(result.path, "cpu")
        assert type(backend) is entry.backend and backend.format == entry.name
        with torch.no_grad():
            assert backend(torch.rand(1, 3, 64, 64)).shape[-1] == backend.metadata.outputs_per_box


def test_readme_shows_every_format() -> None:
    """The README's Design section has a row per entry of the table, with its backend."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in FORMATS:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None and f"`{FORMATS.get(name).backend.__name__}`" in row, name
