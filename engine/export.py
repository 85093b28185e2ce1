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

With --int8, ONNX (onnxruntime's static QDQ quantization) and OpenVINO (NNCF) are written quantized, as
`best_int8.onnx` and `best_int8_openvino_model/`, calibrated on --calib-images images of --data's train split,
with the head's decode (box coordinates in pixels, probabilities) left in floating point
(engine/exporters/decode_scope.py). An int8 file cannot match PyTorch to 1e-4, so instead of that round trip
its accuracy is checked on the val split (engine/int8_check.py): below --min-agreement the export fails, naming
the figures, and the file is removed, unless --accept-low-agreement keeps it. --half on CPU is OpenVINO's: fp16
weights, run by the CPU plugin.

The formats, their file names, exporters (engine/exporters/), backends and packages are the entries of the
format table in engine/formats.py.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from dataio.data_config import DataConfig, load_data_config
from engine.backends import DEFAULT_IMGSZ, PyTorchBackend
from engine.exporters.calibration import DEFAULT_CALIBRATION_IMAGES, CalibrationImages
from engine.exporters.decode_scope import prediction_weight_names
from engine.exporters.job import DEFAULT_OPSET, ExportJob
from engine.formats import FORMATS, ModelFormat, Package, export_format_names, load_backend, require_packages
from engine.imgsz import check_imgsz
from engine.int8_check import DEFAULT_MIN_AGREEMENT, AccuracyCheck, AgreementError, check_int8_accuracy
from engine.metadata import ModelMetadata
from engine.val_run import check_classes_match
from engine.weights import resolve_weights
from models.checkpoint_model import model_from_checkpoint
from utils.checkpoint import CheckpointError, export_kind
from utils.compare import relative_max_difference
from utils.errors import OptionError
from utils.logging import LOGGER
from utils.torch_utils import select_device

DEFAULT_INCLUDE = ("torchscript", "onnx")
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": None}  # relative max difference allowed (int8: see int8_check)
ONNXSLIM = Package("onnxslim", "onnxslim")


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
    accuracy: AccuracyCheck | None = None  # int8: val metrics beside the fp32 model's, agreement (int8_check.py)
    error: str | None = None  # why nothing (correct) was written

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def agreement(self) -> float | None:
        """int8: the agreement of its detections with the fp32 model's."""
        return self.accuracy.agreement if self.accuracy is not None else None


def selected_formats(include: Sequence[str]) -> list[ModelFormat]:
    """The table's entries for --include (any case); OptionError naming the choices for an unknown one."""
    choices = export_format_names()
    unknown = [f for f in include if f.lower() not in choices]
    if unknown or not include:
        shown = " ".join(include)
        raise OptionError(f"--include {shown}: unknown format(s) {unknown}; choose from {', '.join(choices)}")
    return [FORMATS.get(f.lower()) for f in include]


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
    include: Sequence[str] = DEFAULT_INCLUDE,
    imgsz: int | Sequence[int] | None = None,
    batch: int = 1,
    dynamic: bool = False,
    simplify: bool = False,
    opset: int = DEFAULT_OPSET,
    half: bool = False,
    int8: bool = False,
    data: str | None = None,
    calib_images: int = DEFAULT_CALIBRATION_IMAGES,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    accept_low_agreement: bool = False,
    device: str = "cpu",
    runs_dir: str | Path = "runs",
    latency_runs: int = 10,
) -> list[ExportResult]:
    """Export `weights` (default: the newest trained best.pt under `runs_dir`) to each format in `include`.

    Files are written beside the weights (`best.torchscript`, `best.onnx`, `best_openvino_model/`; with `int8`
    `best_int8.onnx`, `best_int8_openvino_model/`). Each is verified against PyTorch and timed; a format that
    fails is reported in its result's `error` and the others go on. An int8 file whose agreement with the fp32
    model is below `min_agreement` raises AgreementError after every format is written (and is removed), unless
    `accept_low_agreement`.
    """
    formats = selected_formats(include)
    if batch < 1:
        raise OptionError(f"--batch must be >= 1, got {batch}")
    selected = select_device(device)
    _check_precision(formats, selected, half, int8)
    weights = resolve_weights(weights, runs_dir)
    cuda_half = half and selected.type == "cuda"  # on CPU --half is OpenVINO's fp16 weights, from the fp32 graph
    reference, model = _load_models(weights, selected, cuda_half)
    stride = int(max(float(s) for s in model.stride))
    size = check_imgsz(imgsz or reference.train_args.get("imgsz") or DEFAULT_IMGSZ, stride)  # default: training size
    metadata = ModelMetadata.from_model(
        model, imgsz=list(size), batch=None if dynamic else batch, dynamic=dynamic, half=half, int8=int8
    )
    example = torch.zeros(batch, 3, *size, device=selected, dtype=torch.float16 if cuda_half else torch.float32)
    job = ExportJob(model, example, metadata, weights, opset, dynamic, simplify, half, int8)
    for entry in formats:
        if entry.check is not None:
            entry.check(job)  # bad options fail in one line before any file is written
    if simplify:
        require_packages((ONNXSLIM,), "--simplify")
    data_config = None
    if int8:
        if size[0] != size[1]:
            raise OptionError(
                f"--imgsz {size[0]} {size[1]}: the int8 accuracy check validates at one square size; give one --imgsz"
            )
        if calib_images < 1:
            raise OptionError(f"--calib-images must be >= 1, got {calib_images}")
        data_config = _int8_data(data, metadata, weights)
        job.calibration = CalibrationImages(data_config.split("train"), size, stride, calib_images, batch, data or "")
        job.decode_weights = prediction_weight_names(model)

    generator = torch.Generator().manual_seed(0)
    checks = [torch.rand(b, 3, h, w, generator=generator) for b, h, w in _check_shapes(size, batch, dynamic, stride)]
    with torch.inference_mode():
        expected = [reference(x.to(selected)).float().cpu() for x in checks]
        pytorch_ms = _latency_ms(model, example, latency_runs)
    precision = " int8" if int8 else " fp16" if half else ""
    LOGGER.info(
        f"Exporting {weights} ({metadata.model}, {metadata.nc} classes, {metadata.head} head) at "
        f"{batch}x3x{size[0]}x{size[1]}{' dynamic' if dynamic else ''}{precision}; "
        f"PyTorch (fused) latency {pytorch_ms:.1f} ms"
        + (f"; calibrating on {len(job.calibration.files)} train images" if job.calibration else "")
    )
    with tempfile.TemporaryDirectory(prefix="export-") as scratch:
        job.scratch = Path(scratch)
        results = [_export_one(entry, job, checks, expected, latency_runs) for entry in formats]
    _report(results)
    if data_config is not None:
        _check_agreement(results, reference, job, data_config, min_agreement, accept_low_agreement)
    return results


def _check_precision(formats: list[ModelFormat], device: torch.device, half: bool, int8: bool) -> None:
    """Refuse --half where it needs CUDA and is not on it, --int8 for formats without an int8 variant, both."""
    if half and int8:
        raise OptionError("--half and --int8: choose one precision")
    needs_cuda = [entry.name for entry in formats if not entry.half_on_cpu]
    if half and device.type != "cuda" and needs_cuda:
        raise OptionError(
            f"--half exports fp16 models and needs a CUDA device (e.g. --device 0) for {', '.join(needs_cuda)}; "
            f"got {device} (openvino takes --half on CPU: fp16 weights)"
        )
    lacking = [entry.name for entry in formats if entry.export is not None and entry.int8_export is None]
    if int8 and lacking:
        int8_formats = [name for name in export_format_names() if FORMATS.get(name).int8_export is not None]
        raise OptionError(
            f"--int8: {', '.join(lacking)} has no int8 export; --include one of {', '.join(int8_formats)}"
        )


def _int8_data(data: str | None, metadata: ModelMetadata, weights: Path) -> DataConfig:
    """The data set int8 calibrates on and is checked against: --data, else the one the model was trained on."""
    trained = metadata.data or {}
    name = data or trained.get("name")
    if not name:
        raise OptionError(
            f"--int8 calibrates on a data set's train split and checks accuracy on its val split: pass --data "
            f"({weights} does not record the data it was trained on)"
        )
    config = load_data_config(name)
    if not trained.get("single_cls"):
        check_classes_match(weights, metadata.names, config)
    return config


def _check_agreement(
    results: list[ExportResult],
    reference: nn.Module,
    job: ExportJob,
    data: DataConfig,
    min_agreement: float,
    accept: bool,
) -> None:
    """Validate the written int8 files against the fp32 model; below `min_agreement` remove them and raise
    AgreementError with the figures, unless `accept`."""
    written = [r for r in results if r.ok]
    if not written:
        return
    device = job.example.device
    fp32 = PyTorchBackend(job.weights, reference, device)
    single_cls = bool((job.metadata.data or {}).get("single_cls"))
    files = [r.path for r in written]
    checks = check_int8_accuracy(fp32, files, data, job.metadata.imgsz[0], job.example.shape[0], single_cls)
    low = []
    for result, check in zip(written, checks):
        result.accuracy = check
        if not check.agreement >= min_agreement:  # nan (nothing to agree with) is low too
            low.append((result, check))
    if not low:
        return
    figures = "; ".join(check.describe() for _, check in low)
    if accept:
        LOGGER.warning(f"--accept-low-agreement: kept below --min-agreement {min_agreement}: {figures}")
        return
    for result, _ in low:  # a file that failed its check is not left where detect.py would take it
        if result.path.is_dir():
            shutil.rmtree(result.path)
        else:
            result.path.unlink()
    raise AgreementError(
        f"--min-agreement {min_agreement}: {figures}; removed {', '.join(str(r.path) for r, _ in low)} "
        f"(--accept-low-agreement keeps it)"
    )


def _load_models(weights: Path, device: torch.device, half: bool) -> tuple[nn.Module, nn.Module]:
    """The checkpoint's model as trained (unfused fp32: the reference every export is compared with) and its
    fused deploy copy, in fp16 with `half`, without gradients: what every exporter traces."""
    kind = export_kind(weights)
    if kind is not None:
        raise OptionError(
            f"--weights {weights}: export.py takes a .pt checkpoint of this project (runs/train/*/weights/best.pt); "
            f"{weights.name} is {kind}"
        )
    try:
        reference = model_from_checkpoint(weights).eval().to(device)
    except CheckpointError as e:
        raise CheckpointError(f"--weights {e}") from None
    model = copy.deepcopy(reference).fuse().eval()
    model = model.half() if half else model
    for p in model.parameters():
        p.requires_grad_(False)
    return reference, model


def _export_one(
    entry: ModelFormat,
    job: ExportJob,
    checks: list[torch.Tensor],
    expected: list[torch.Tensor],
    latency_runs: int,
) -> ExportResult:
    """Write one format and check it; any failure (a missing package, an exporter error, outputs that differ)
    is recorded in the result's `error`, so one format failing does not stop the others."""
    result = ExportResult(entry.name)
    exporter = entry.int8_export if job.int8 else entry.export
    try:
        require_packages((*entry.export_packages, *(entry.int8_packages if job.int8 else ())), f"{entry.name} export")
        result.path = job.written[entry.name] = exporter(job, entry.output_path(job.weights, job.int8))
        files = [result.path] if result.path.is_file() else result.path.rglob("*")
        result.size_mb = sum(f.stat().st_size for f in files) / 1e6
        reason = entry.unverifiable(job) if entry.unverifiable is not None else None
        if reason is not None:
            LOGGER.warning(f"{result.path}{' (fp16)' if job.half else ''} written but not checked: {reason}")
        else:
            precision = "int8" if job.int8 else "fp16" if job.half else "fp32"
            _verify(result, checks, expected, job.example.device, TOLERANCE[precision], latency_runs)
    except Exception as e:  # reported, not raised: the other formats go on
        result.error = f"{type(e).__name__}: {e}"
    return result


def _verify(
    result: ExportResult,
    checks: list[torch.Tensor],
    expected: list[torch.Tensor],
    device: torch.device,
    tolerance: float | None,
    latency_runs: int,
) -> None:
    """Run the written file through the loader on every check input; record the worst difference and latency.
    A difference above `tolerance` fails the format (None: recorded only, as for int8)."""
    backend = load_backend(result.path, device)
    outputs = [backend(x).cpu() for x in checks]
    result.max_difference = max(relative_max_difference(e, o) for e, o in zip(expected, outputs))
    result.latency_ms = _latency_ms(backend, checks[0].to(device), latency_runs)
    if tolerance is not None and result.max_difference > tolerance:
        raise ExportError(
            f"{result.path}: outputs differ from PyTorch by {result.max_difference:.2e} x max|output| "
            f"(allowed {tolerance:.0e})"
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
