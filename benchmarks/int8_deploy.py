"""int8 on CPU for trained checkpoints: agreement and val metrics of the int8 exports against the fp32 model, and
latency of OpenVINO int8 (and ONNX Runtime int8, OpenVINO fp32) against ONNX Runtime fp32.

    OMP_NUM_THREADS=1 python benchmarks/int8_deploy.py --weights runs/train/exp/weights/best.pt [more.pt ...]

Accuracy: export.py --include onnx openvino --int8 at the checkpoint's training size, calibrated on its data's
train split (--calib-images), checked on the val split (engine/int8_check.py); the figures are the check's.
Latency: separate static exports at --imgsz (640), batch 1; each backend with --threads intra-op threads (ONNX
Runtime with `session.intra_op.allow_spinning = 0`, so an idle runtime does not burn the cores the others time
on; OpenVINO with INFERENCE_NUM_THREADS and the LATENCY hint), one inference of each per round in a random
order, --runs rounds after --warmup, median per backend. Writes a markdown report (machine, versions, command,
load average) to --out.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import openvino as ov  # noqa: E402
import torch  # noqa: E402

from engine.export import ExportResult, export  # noqa: E402


def _onnx_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})


def _openvino_model(directory: Path, threads: int):
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    compiled = ov.Core().compile_model(str(next(directory.glob("*.xml"))), "CPU", config)
    return lambda x: compiled(x)


def interleaved_medians(runners: dict, image: np.ndarray, runs: int, warmup: int, seed: int = 0) -> dict[str, float]:
    """Median ms per runner over `runs` rounds, each round running every runner once in a random order."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(warmup + runs):
        for name in rng.sample(list(runners), len(runners)):
            start = time.perf_counter()
            runners[name](image)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _by_format(results: list[ExportResult]) -> dict[str, ExportResult]:
    failed = [f"{r.format}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError("; ".join(failed))
    return {r.format: r for r in results}


def measure(weights: Path, work: Path, args: argparse.Namespace) -> dict:
    """Accuracy at the training size, latency at --imgsz, for one checkpoint."""
    name = weights.parent.parent.name
    accuracy_dir, latency_dir = work / name / "accuracy", work / name / f"latency{args.imgsz}"
    for directory in (accuracy_dir, latency_dir):
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copy(weights, directory / "best.pt")
    started = time.perf_counter()
    accuracy = _by_format(
        export(
            accuracy_dir / "best.pt", ["onnx", "openvino"], int8=True, calib_images=args.calib_images,
            accept_low_agreement=True, latency_runs=1,
        )
    )  # fmt: skip
    export_s = time.perf_counter() - started
    fp32 = _by_format(export(latency_dir / "best.pt", ["onnx", "openvino"], imgsz=args.imgsz, latency_runs=1))
    int8 = _by_format(
        export(
            latency_dir / "best.pt", ["onnx", "openvino"], imgsz=args.imgsz, int8=True, calib_images=16,
            accept_low_agreement=True, latency_runs=1,
        )
    )  # fmt: skip
    runners = {
        "ort_fp32": _onnx_session(fp32["onnx"].path, args.threads),
        "ort_int8": _onnx_session(int8["onnx"].path, args.threads),
        "ov_fp32": _openvino_model(fp32["openvino"].path, args.threads),
        "ov_int8": _openvino_model(int8["openvino"].path, args.threads),
    }
    image = np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)
    load_before = os.getloadavg()[0]
    latency = interleaved_medians(runners, image, args.runs, args.warmup)
    return {
        "name": name,
        "weights": weights,
        "accuracy": {fmt: r.accuracy for fmt, r in accuracy.items()},
        "int8_export_s": export_s,
        "latency": latency,
        "load": (load_before, os.getloadavg()[0]),
    }


def report(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    import nncf

    lines = [
        f"# int8 on CPU: accuracy against fp32 and latency ({date.today().isoformat()})",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; torch "
        f"{torch.__version__}, onnxruntime {ort.__version__}, openvino {ov.__version__.split('-')[0]}, nncf "
        f"{nncf.__version__}.",
        f"Command: `{command}`",
        "",
        "## Accuracy (export.py --int8 at the training size, the check's figures on the trees val split)",
        "",
        "| checkpoint | file | P | R | mAP50 | mAP50-95 | agreement | export + check s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        checks = list(row["accuracy"].values())
        m = checks[0].fp32
        lines.append(
            f"| {row['name']} | fp32 (best.pt) | {m['precision']:.3f} | {m['recall']:.3f} | {m['map50']:.3f} | "
            f"{m['map50_95']:.3f} | - | |"
        )
        for check in row["accuracy"].values():
            m = check.int8
            lines.append(
                f"| | {check.path.name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['map50']:.3f} | "
                f"{m['map50_95']:.3f} | **{check.agreement:.3f}** | {row['int8_export_s']:.0f} (both) |"
            )
    lines += [
        "",
        f"## Latency at {args.imgsz}x{args.imgsz}, batch 1, {args.threads} threads (median of {args.runs} interleaved "
        "rounds, ms)",
        "",
        "| checkpoint | ORT fp32 | ORT int8 | OpenVINO fp32 | OpenVINO int8 | OV int8 speed-up vs ORT fp32 | "
        "load avg before/after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        t = row["latency"]
        lines.append(
            f"| {row['name']} | {t['ort_fp32']:.1f} | {t['ort_int8']:.1f} | {t['ov_fp32']:.1f} | {t['ov_int8']:.1f} "
            f"| **{t['ort_fp32'] / t['ov_int8']:.2f}x** | {row['load'][0]:.1f} / {row['load'][1]:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", required=True, help="trained checkpoints (.../weights/best.pt)")
    parser.add_argument("--imgsz", type=int, default=640, help="latency input size")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every runtime while timing")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calib-images", type=int, default=300)
    parser.add_argument("--work", default="runs/int8_deploy", help="where the exports are written")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_deploy.md"))
    args = parser.parse_args()
    rows = [measure(Path(w), Path(args.work), args) for w in args.weights]
    text = report(rows, args, "python " + " ".join(sys.argv))
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
