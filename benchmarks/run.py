"""The benchmark suite: size, CPU latency per format, training and data-loader throughput, optionally side by side
with the reference packages.

    python benchmarks/run.py                                 # every config, writes benchmarks/results/benchmark.md/.png
    /tmp/peer-venv/bin/python benchmarks/run.py --compare    # + yolov5n/yolov5s (yolov5 package), YOLO11n (ultralytics)
    python benchmarks/run.py --weights runs/train/exp/weights/best.pt --configs yolov5n.yaml

Latency: batch 1 at --imgsz, the median of --runs rounds; in each round every format of one model (and its
reference package's model, with --compare) runs once, in a new random order, so the ratios between them are
measured under the same load. ONNX Runtime runs with thread spinning off and OpenVINO with torch's thread count.
Training: our trainer's own step on the bundled trees data (phases timed by a hook), the data loader alone, and with
--compare one training step of ours against the reference package's on the same real batch, interleaved.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.suite.ours import EXPORT_FORMATS, INT8_FORMATS, Candidate, build_candidate, config_names  # noqa: E402
from benchmarks.suite.references import available_references, export_reference_onnx  # noqa: E402
from benchmarks.suite.report import latency_table, machine, plot_latency, versions  # noqa: E402
from benchmarks.suite.runners import onnxruntime_runner, torch_runner  # noqa: E402
from benchmarks.suite.timing import interleaved_medians  # noqa: E402
from benchmarks.suite.training import compare_training_steps, profile_training  # noqa: E402
from models.summary import count_parameters  # noqa: E402

TRAIN_CONFIGS = ["yolov5n.yaml", "yolo11n.yaml", "yolov5s_mobileone.yaml"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=None, help="default: every config under cfg/ at scale n, + yolov5s")
    p.add_argument("--weights", nargs="*", default=[], help="trained checkpoints timed as well")
    p.add_argument("--formats", nargs="*", default=list(EXPORT_FORMATS), help="export.py --include names to time")
    p.add_argument("--int8-data", default="trees.yaml", help="calibrate int8 ONNX/OpenVINO on it ('': no int8)")
    p.add_argument("--calib-images", type=int, default=32, help="int8 calibration images")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--runs", type=int, default=20, help="timed rounds per model (median reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compare", action="store_true", help="time the reference packages' models too")
    p.add_argument("--train-configs", nargs="*", default=TRAIN_CONFIGS, help="configs whose training is timed")
    p.add_argument("--train-imgsz", type=int, default=416)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=6, help="timed training steps per config")
    p.add_argument("--data", default="trees.yaml", help="dataset of the training measurements")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for benchmark.md/.png")
    return p.parse_args(argv)


def time_latency(args: argparse.Namespace, workdir: Path) -> tuple[list[dict], list[str]]:
    """Rows of the latency table and the format columns, ours and (with --compare) the references'."""
    configs = args.configs or list(dict.fromkeys([*config_names(("n",)), "yolov5s.yaml"]))
    references = {r.config: r for r in available_references(configs)} if args.compare else {}
    int8 = [f"{f} int8" for f in INT8_FORMATS] if args.int8_data else []
    rows, columns = [], ["eager", "eager fused", *args.formats, *int8]
    candidates: list[Candidate] = [
        build_candidate(c, args.imgsz, workdir, tuple(args.formats), args.int8_data, args.calib_images)
        for c in [*configs, *args.weights]
    ]
    for candidate in candidates:
        runners = dict(candidate.runners)
        reference = references.get(candidate.config)
        if reference is not None:
            image = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
            onnx = export_reference_onnx(
                reference, args.imgsz, workdir / f"reference_{Path(reference.config).stem}.onnx"
            )
            runners["reference eager fused"] = torch_runner(reference.model, image)
            runners["reference onnx"] = onnxruntime_runner(onnx, image)
        medians = interleaved_medians(runners, args.runs)
        ours = {name: ms for name, ms in medians.items() if not name.startswith("reference ")}
        rows.append(
            {
                "name": candidate.config,
                "params": candidate.parameters,
                "gflops": candidate.gflops,
                "latency": ours,
                "agreement": candidate.agreement,
            }
        )
        for name, error in candidate.errors.items():
            print(f"{candidate.config}: {name} not timed: {error}")
        if reference is not None:
            theirs = {"eager fused": medians["reference eager fused"], "onnx": medians["reference onnx"]}
            label = f"{Path(reference.config).stem} ({reference.package} {reference.version})"
            rows.append({"name": label, "params": count_parameters(reference.model), "gflops": None, "latency": theirs})
        print(" ".join(f"{k} {v:.1f}" for k, v in medians.items()), f"<- {candidate.config}", flush=True)
    return rows, columns


def ratio_lines(rows: list[dict]) -> list[str]:
    """ours / reference latency for the formats both have, per reference row (the row after ours)."""
    lines = []
    for ours, theirs in zip(rows, rows[1:]):
        if "(" in theirs["name"] and "(" not in ours["name"]:
            shared = [f for f in theirs["latency"] if f in ours["latency"]]
            ratios = ", ".join(f"{f} {ours['latency'][f] / theirs['latency'][f]:.2f}x" for f in shared)
            lines.append(f"- {ours['name']} vs {theirs['name']}: {ratios} (ours / theirs; below 1 is faster)")
    return lines


def time_training(args: argparse.Namespace) -> list[str]:
    lines = [
        "| config | training images/s | data loader images/s | loader / training | ms per step: "
        "data / forward / loss / backward / optimizer / EMA+hooks |",
        "|---|---|---|---|---|",
    ]
    batch = None
    for config in args.train_configs:
        profile = profile_training(config, args.data, args.train_imgsz, args.train_batch, args.train_steps)
        batch = profile.batch
        train_rate = profile.timer.images_per_second()
        phases = " / ".join(f"{ms:.0f}" for ms in profile.timer.milliseconds().values())
        lines.append(
            f"| {config} | {train_rate:.1f} | {profile.loader_images_per_s:.1f} | "
            f"{profile.loader_images_per_s / train_rate:.1f}x | {phases} |"
        )
        print(lines[-1], flush=True)
    if args.compare and batch is not None:
        pairs = [(c, p) for c, p in (("yolov5n.yaml", "yolov5 package"), ("yolo11n.yaml", "ultralytics"))]
        pairs = [(c, p) for c, p in pairs if any(r.config == c for r in available_references([c], say=lambda _: None))]
        lines += ["", "Training step side by side (same real batch, interleaved; images/s):", ""]
        for config, (ours, theirs) in compare_training_steps(pairs, batch, runs=max(3, args.train_steps)).items():
            lines.append(f"- {config}: ours {ours:.1f}, reference {theirs:.1f} ({ours / theirs:.2f}x)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:  # called in-process (tests/test_benchmark_suite.py): later code keeps its own thread count
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with TemporaryDirectory() as workdir:
        rows, columns = time_latency(args, Path(workdir))
    training = time_training(args) if args.train_configs else []
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = [
        f"# Benchmark ({date.today().isoformat()})",
        "",
        f"Machine: {machine()}. Versions: {versions()}.",
        f"Command: `{command.strip()}`",
        "",
        f"## CPU latency, batch 1, {args.imgsz} px, median of {args.runs} interleaved rounds (random weights, nc=80)",
        "",
        *latency_table(rows, columns),
        "",
        *ratio_lines(rows),
        "",
        f"## Training on {args.data}, {args.train_imgsz} px, batch {args.train_batch} ({args.train_steps} steps)",
        "",
        *training,
    ]
    (out / "benchmark.md").write_text("\n".join(text) + "\n")
    plot_latency(rows, columns, out / "benchmark.png", args.imgsz)
    print(f"wrote {out / 'benchmark.md'} and {out / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
