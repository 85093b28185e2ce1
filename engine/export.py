"""Export a trained checkpoint to TorchScript, ONNX and (where installed) OpenVINO, then prove each file right.

Every export starts from the fused, re-parameterized model (`model.fuse()`: BatchNorms folded, MobileOne
branches merged), so the exported graph is the deploy graph. After writing a file it is loaded back through
engine/backends.py, run on a test input and compared with the unfused PyTorch model: the largest absolute
difference must be <= 1e-4 x the largest |PyTorch output| in fp32 (1e-2 in fp16). Then the file, its size,
that difference and its latency are printed.

Output layout (all formats): one input `images`, float32 (fp16 with --half) (batch, 3, height, width), RGB
in [0, 1], letterboxed with gray (114) padding; one output `output0` of the same dtype, shaped
(batch, anchors, 4 + [1] + nc) for both head families:
  - columns 0-3: box centre x, centre y, width, height in input pixels;
  - column 4 (YOLOv5 anchor head only): objectness probability;
  - the rest: per-class probabilities (sigmoid). Score of a box = objectness x class probability (anchor
    head) or the class probability (DFL head).
`anchors` = sum over levels of cells (x 3 anchors per cell for the anchor head): 8400 for a YOLO11 model at
640x640, 25200 for YOLOv5. No NMS in the graph. (YOLOv5's own export has this layout; ultralytics' YOLO11
export is transposed, (batch, 4 + nc, anchors): code written for that must transpose ours.) With --dynamic,
batch, height and width (multiples of the largest stride) are free axes and `anchors` follows them. Metadata
(names, stride, imgsz, batch, dynamic, head family 'anchor'/'dfl', half, and the data set trained on: name,
nc, names, single_cls) is in ONNX `metadata_props` as JSON strings and in TorchScript
`_extra_files['metadata.json']`; val.py scores on that data set by default.

ONNX is written with the TorchScript-based exporter (`dynamo=False`): the torch.export-based exporter, the
default since torch 2.9, needs the onnxscript package, which this project does not depend on, and the
traced exporter handles our graphs and their `dynamic_axes` exactly (every config is tested at two sizes).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from engine.backends import DEFAULT_IMGSZ, OPENVINO_DIR_SUFFIX, load_backend
from engine.imgsz import check_imgsz
from engine.metadata import ModelMetadata
from engine.weights import resolve_weights
from models.checkpoint_model import model_from_checkpoint
from utils.checkpoint import CheckpointError, export_kind
from utils.compare import relative_max_difference
from utils.logging import LOGGER
from utils.native_output import native_output_kept_on_success
from utils.torch_utils import select_device

if TYPE_CHECKING:
    import onnx

FORMATS = ("torchscript", "onnx", "openvino")
DEFAULT_OPSET = 17
MIN_OPSET = 9  # nearest upsampling (every neck has it) fails to export below 9: "upsample_nearest2d ... indexing"
TOLERANCE = {False: 1e-4, True: 1e-2}  # relative max difference allowed: fp32, fp16


class ExportError(RuntimeError):
    """An export that could not be written or did not reproduce the PyTorch outputs."""


@dataclass
class ExportResult:
    """One exported file and how it checked out."""

    format: str
    path: Path | None = None
    size_mb: float = 0.0
    max_difference: float | None = None  # relative to max |PyTorch output|, over every checked input shape
    latency_ms: float | None = None  # median over the timed runs, at the export shape
    error: str | None = None  # why nothing (correct) was written

    @property
    def ok(self) -> bool:
        return self.error is None


def max_opset() -> int:
    """The highest opset the installed torch's TorchScript-based ONNX exporter writes (20 in torch 2.9-2.14)."""
    from torch.onnx import _constants  # private, but the only place torch states it; 20 where it is missing

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))


def check_opset(opset: int) -> int:
    """`opset` if this torch can write it and our layers export at it; otherwise a one-line ValueError naming
    --opset and the range accepted (torch would print its whole IR graph before failing)."""
    high = max_opset()
    if not MIN_OPSET <= opset <= high:
        raise ValueError(
            f"--opset {opset}: use {MIN_OPSET}-{high} (default {DEFAULT_OPSET}); the ONNX exporter of the installed "
            f"torch {torch.__version__.split('+')[0]} writes opsets up to {high}, and nearest upsampling needs "
            f">= {MIN_OPSET}"
        )
    return opset


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: ModelMetadata) -> Path:
    """Trace `model` (a traced graph follows input shapes, so it serves --dynamic too) and save it with metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python values from constant strides
        traced = torch.jit.trace(model, example, strict=False, check_trace=False)  # verified below instead
    traced.save(str(path), _extra_files={"metadata.json": metadata.to_json()})
    return path


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    metadata: ModelMetadata,
    opset: int = DEFAULT_OPSET,
    dynamic: bool = False,
    simplify: bool = False,
) -> Path:
    """Write an ONNX file (layout in this module's docstring), checked by onnx.checker, metadata attached."""
    import onnx

    dynamic_axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 1: "anchors"}}
    # A failing export prints its whole TorchScript IR graph from C++ before raising: the exception is the message.
    with warnings.catch_warnings(), native_output_kept_on_success():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and TracerWarnings
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            do_constant_folding=True,
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes=dynamic_axes if dynamic else None,
        )
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    if simplify:
        graph = _simplify(graph)
    for key, value in metadata.to_strings().items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))
    return path


def _simplify(graph: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxsim
    except ImportError:
        LOGGER.warning(
            "--simplify: the onnxsim package is not installed; the ONNX model is written "
            "unsimplified (pip install onnxsim to enable it)"
        )
        return graph
    simplified, ok = onnxsim.simplify(graph)
    if not ok:
        LOGGER.warning("--simplify: onnxsim could not validate the simplified model; keeping the original")
        return graph
    return simplified


def export_openvino(onnx_path: Path, directory: Path, metadata: ModelMetadata, half: bool = False) -> Path:
    """Convert the ONNX file to OpenVINO IR in `directory` (needs the openvino package)."""
    try:
        import openvino as ov
    except ImportError:
        raise ExportError(
            "the openvino package is not installed; OpenVINO export skipped (pip install openvino)"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    xml = directory / onnx_path.with_suffix(".xml").name
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=half)
    (directory / "metadata.json").write_text(metadata.to_json())
    return directory


def _check_shapes(imgsz: tuple[int, int], batch: int, dynamic: bool, stride: int) -> list[tuple[int, int, int]]:
    """Input shapes (batch, h, w) the round trip is checked at: the export shape, and for --dynamic a second one."""
    shapes = [(batch, *imgsz)]
    if dynamic:
        shapes.append((batch + 1, imgsz[0], imgsz[1] + stride))
    return shapes


def _latency_ms(run: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, runs: int) -> float:
    """Median wall time of `runs` calls after one warm-up call."""
    run(example)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(example)
        if example.device.type == "cuda":
            torch.cuda.synchronize(example.device)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def export(
    weights: str | Path | None = None,
    include: Sequence[str] = ("torchscript", "onnx"),
    imgsz: int | Sequence[int] | None = None,
    batch: int = 1,
    dynamic: bool = False,
    simplify: bool = False,
    opset: int = DEFAULT_OPSET,
    half: bool = False,
    device: str = "cpu",
    runs_dir: str | Path = "runs",
    latency_runs: int = 10,
) -> list[ExportResult]:
    """Export `weights` (default: the newest trained best.pt under `runs_dir`) to each format in `include`.

    Files are written beside the weights (`best.torchscript`, `best.onnx`, `best_openvino_model/`). Each is
    verified against PyTorch and timed; a format that fails is reported in its result's `error` and the
    others go on.
    """
    unknown = [f for f in include if f.lower() not in FORMATS]
    if unknown or not include:
        raise ValueError(
            f"--include {' '.join(include)}: unknown format(s) {unknown}; choose from {', '.join(FORMATS)}"
        )
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if {"onnx", "openvino"} & {f.lower() for f in include}:  # OpenVINO is converted from the ONNX file
        check_opset(opset)
    selected = select_device(device)
    if half and selected.type != "cuda":
        raise ValueError(f"--half exports fp16 models and needs a CUDA device (e.g. --device 0); got {selected}")
    weights = resolve_weights(weights, runs_dir)
    kind = export_kind(weights)
    if kind is not None:
        raise ValueError(
            f"--weights {weights}: export.py takes a .pt checkpoint of this project (runs/train/*/weights/best.pt); "
            f"{weights.name} is {kind}"
        )
    try:
        reference = model_from_checkpoint(weights).eval().to(selected)  # unfused fp32: what the user trained
    except CheckpointError as e:
        raise CheckpointError(f"--weights {e}") from None
    model = copy.deepcopy(reference).fuse().eval()
    model = model.half() if half else model
    for p in model.parameters():
        p.requires_grad_(False)
    stride = int(max(float(s) for s in model.stride))
    size = check_imgsz(imgsz or reference.train_args.get("imgsz") or DEFAULT_IMGSZ, stride)  # default: training size
    metadata = ModelMetadata.from_model(
        model, imgsz=list(size), batch=None if dynamic else batch, dynamic=dynamic, half=half
    )
    dtype = torch.float16 if half else torch.float32
    example = torch.zeros(batch, 3, *size, device=selected, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    checks = [torch.rand(b, 3, h, w, generator=generator) for b, h, w in _check_shapes(size, batch, dynamic, stride)]
    with torch.inference_mode():
        expected = [reference(x.to(selected)).float().cpu() for x in checks]
        pytorch_ms = _latency_ms(model, example, latency_runs)
    LOGGER.info(
        f"Exporting {weights} ({metadata.model}, {metadata.nc} classes, {metadata.head} head) at "
        f"{batch}x3x{size[0]}x{size[1]}{' dynamic' if dynamic else ''}{' fp16' if half else ''}; "
        f"PyTorch (fused) latency {pytorch_ms:.1f} ms"
    )

    results = []
    onnx_path: Path | None = None
    for fmt in [f.lower() for f in include]:
        result = ExportResult(fmt)
        try:
            if fmt == "torchscript":
                path = export_torchscript(model, example, weights.with_suffix(".torchscript"), metadata)
            elif fmt == "onnx":
                path = onnx_path = export_onnx(
                    model, example, weights.with_suffix(".onnx"), metadata, opset, dynamic, simplify
                )
            else:
                source = onnx_path or export_onnx(
                    model, example, weights.with_suffix(".onnx"), metadata, opset, dynamic
                )
                path = export_openvino(source, weights.parent / f"{weights.stem}{OPENVINO_DIR_SUFFIX}", metadata, half)
            result.path = path
            result.size_mb = sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*"))) / 1e6
            _verify(result, checks, expected, selected, half, latency_runs)
        except Exception as e:  # one format failing must not stop the others; the error is reported
            result.error = f"{type(e).__name__}: {e}"
        results.append(result)
    _report(results)
    return results


def _verify(
    result: ExportResult,
    checks: list[torch.Tensor],
    expected: list[torch.Tensor],
    device: torch.device,
    half: bool,
    latency_runs: int,
) -> None:
    """Run the written file through the loader on every check input; record the worst difference and latency."""
    if result.format == "onnx" and half:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():  # the CPU provider lacks fp16 kernels
            LOGGER.warning(
                f"{result.path} (fp16) written but not checked: this onnxruntime has no CUDA "
                "provider to run fp16 models (pip install onnxruntime-gpu)"
            )
            return
    backend = load_backend(result.path, device)
    outputs = [backend(x).cpu() for x in checks]
    result.max_difference = max(relative_max_difference(e, o) for e, o in zip(expected, outputs))
    result.latency_ms = _latency_ms(backend, checks[0].to(device), latency_runs)
    if result.max_difference > TOLERANCE[half]:
        raise ExportError(
            f"{result.path}: outputs differ from PyTorch by {result.max_difference:.2e} x max|output| "
            f"(allowed {TOLERANCE[half]:.0e})"
        )


def _report(results: list[ExportResult]) -> None:
    lines = [f"{'format':<12}{'file':<48}{'size MB':>9}{'max rel diff':>14}{'latency ms':>12}"]
    for r in results:
        diff = f"{r.max_difference:.2e}" if r.max_difference is not None else "-"
        latency = f"{r.latency_ms:.1f}" if r.latency_ms is not None else "-"
        lines.append(f"{r.format:<12}{r.path or '-'!s:<48}{r.size_mb:>9.2f}{diff:>14}{latency:>12}")
    LOGGER.info("\n".join(lines))
    for r in results:
        if not r.ok:
            LOGGER.error(f"{r.format} export failed: {r.error}")
    if any(r.ok for r in results):
        LOGGER.info(f"Run it: python detect.py --weights {next(r.path for r in results if r.ok)} --source <images>")
