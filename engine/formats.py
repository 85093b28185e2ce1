"""The weights-format table: one entry per format says how its files are named, written, loaded and what they need.

`weights_format` (which format a path is), `load_backend`, `export()` and export.py's `--include` choices all
read this table, so adding a format (a TFLite, a TensorRT engine, ...) is one `register_format` call:

    register_format(ModelFormat("tflite", ".tflite", TFLiteBackend, export_tflite, ...))

An entry's int8 variant (`int8_export`: export.py --int8) is written as `<name>_int8<suffix>` and loaded by the
same backend. The PyTorch checkpoint is an entry too (loaded, never exported), so every loadable file is named here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.backends import Backend, OnnxBackend, OpenVINOBackend, PyTorchBackend, TorchScriptBackend
from engine.exporters.job import ExportJob
from engine.exporters.onnx import check_onnx_options, export_onnx, fp16_unverifiable
from engine.exporters.onnx_int8 import export_onnx_int8
from engine.exporters.openvino import export_openvino, export_openvino_int8
from engine.exporters.torchscript import export_torchscript
from engine.metadata import ModelFileError
from models.registry import Registry
from utils.errors import OptionError, UserError
from utils.torch_utils import select_device

Exporter = Callable[[ExportJob, Path], Path]  # (job, path to write) -> what was written


class WeightsNotFoundError(ModelFileError, FileNotFoundError):
    """--weights names a file that does not exist."""


class MissingPackageError(UserError, ImportError, ValueError):
    """A format needs a package that is not installed: one `error:` line naming the pip package from a script,
    an ImportError (and, for older callers, a ValueError) to Python code."""


@dataclass(frozen=True)
class Package:
    """A package a format needs: the name it is imported by and the name pip installs it by."""

    module: str
    pip: str


@dataclass(frozen=True)
class ModelFormat:
    """One weights format: its name (as --include spells it), how its files are named, written and loaded."""

    name: str
    suffix: str  # of the file (".onnx"), or the end of the directory's name for a directory format
    backend: type[Backend]  # `backend.load(path, device, half)` runs a file of this format
    export: Exporter | None = None  # None: loaded, never written (a .pt checkpoint is trained, not exported)
    directory: bool = False  # written as a directory (`best_openvino_model/`) rather than a file
    other_suffixes: tuple[str, ...] = ()  # also recognised by these file suffixes (the .xml inside OpenVINO's)
    export_packages: tuple[Package, ...] = ()  # to write the format and run it for the export's check
    run_packages: tuple[Package, ...] = ()  # to load and run a file of the format
    check: Callable[[ExportJob], None] | None = None  # refuses bad options (ValueError) before anything is written
    unverifiable: Callable[[ExportJob], str | None] | None = None  # why a written file cannot be run here, if so
    int8_export: Exporter | None = None  # writes the int8 variant (--int8); None: the format has none
    int8_packages: tuple[Package, ...] = ()  # besides export_packages, to write the int8 variant
    half_on_cpu: bool = False  # --half works without CUDA (fp16 weights that the CPU runs: OpenVINO)

    def output_path(self, weights: Path, int8: bool = False) -> Path:
        """Where exporting `weights` (`.../best.pt`) writes this format: beside it, named after it
        (`best_int8.onnx`, `best_int8_openvino_model/` for the int8 variant)."""
        return weights.parent / f"{weights.stem}{'_int8' if int8 else ''}{self.suffix}"

    def matched_suffix(self, path: Path) -> str | None:
        """The longest of this format's suffixes that `path`'s name ends with, if any."""
        found = [s for s in (self.suffix, *self.other_suffixes) if path.name.endswith(s)]
        return max(found, key=len) if found else None

    @property
    def spelled(self) -> str:
        """The name pattern shown to users: `.onnx`, `<name>_openvino_model/`."""
        return f"<name>{self.suffix}/" if self.directory else self.suffix


FORMATS: Registry[ModelFormat] = Registry("weights format")


def register_format(entry: ModelFormat) -> ModelFormat:
    """Add a format to the table; returns it. Its name and suffixes must be new (a file has one format).
    `FORMATS.remove(name)` takes it out again."""
    suffixes = {entry.suffix, *entry.other_suffixes}
    for name in FORMATS:
        taken = suffixes & {FORMATS.get(name).suffix, *FORMATS.get(name).other_suffixes}
        if taken:
            raise ValueError(f"weights format '{entry.name}': suffix {sorted(taken)[0]} is the {name} format's")
    return FORMATS.add(entry.name, entry)


def export_format_names() -> list[str]:
    """The formats export() can write, as --include spells them."""
    return [name for name in FORMATS if FORMATS.get(name).export is not None]


def weights_format(path: str | Path) -> ModelFormat:
    """The format `path`'s name says it is in; ModelFileError naming the supported names for anything else."""
    path = Path(path)
    matches = {}  # the longest suffix wins: `best_int8.onnx` is an int8 ONNX format's before it is ONNX's
    for name in FORMATS:
        suffix = FORMATS.get(name).matched_suffix(path)
        if suffix is not None:
            matches[suffix] = FORMATS.get(name)
    if matches:
        return matches[max(matches, key=len)]
    supported = ", ".join(FORMATS.get(name).spelled for name in FORMATS)
    raise ModelFileError(f"{path}: unknown weights format '{path.suffix}'; supported: {supported}")


def require_packages(packages: tuple[Package, ...], purpose: str) -> None:
    """Raise MissingPackageError, one line naming the pip package, for the first of `packages` not installed."""
    for package in packages:
        if importlib.util.find_spec(package.module) is None:
            pip = package.pip
            raise MissingPackageError(f"{purpose}: the {pip} package is not installed (pip install {pip})")


def load_backend(weights: str | Path, device: str | torch.device | None = "", half: bool = False) -> Backend:
    """Load `weights` in whatever format its name says, on `device` ('' = CUDA if available, 'cpu', '0', ...).

    `half` runs a `.pt` checkpoint in fp16 (CUDA only); exported files keep the precision they were exported in.
    """
    path = Path(weights)
    entry = weights_format(path)
    if not path.exists():
        raise WeightsNotFoundError(f"weights not found: {path}")
    device = device if isinstance(device, torch.device) else select_device(device)
    if half and device.type != "cuda":
        raise OptionError(f"--half needs a CUDA device (e.g. --device 0); the device here is {device}")
    require_packages(entry.run_packages, f"{path}: running {entry.name} models")
    return entry.backend.load(path, device, half)


ONNX = Package("onnx", "onnx")
ONNXRUNTIME = Package("onnxruntime", "onnxruntime")
OPENVINO = Package("openvino", "openvino")
NNCF = Package("nncf", "nncf")

register_format(ModelFormat("pytorch", ".pt", PyTorchBackend))
register_format(ModelFormat("torchscript", ".torchscript", TorchScriptBackend, export_torchscript))
register_format(
    ModelFormat(
        "onnx",
        ".onnx",
        OnnxBackend,
        export_onnx,
        export_packages=(ONNX, ONNXRUNTIME),
        run_packages=(ONNXRUNTIME,),
        check=check_onnx_options,
        unverifiable=fp16_unverifiable,
        int8_export=export_onnx_int8,
    )
)
register_format(
    ModelFormat(
        "openvino",
        "_openvino_model",
        OpenVINOBackend,
        export_openvino,
        directory=True,
        other_suffixes=(".xml",),
        export_packages=(ONNX, OPENVINO),  # converted from the ONNX graph
        run_packages=(OPENVINO,),
        check=check_onnx_options,
        int8_export=export_openvino_int8,
        int8_packages=(NNCF,),
        half_on_cpu=True,
    )
)
