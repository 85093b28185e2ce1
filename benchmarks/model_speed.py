"""CPU latency of each config, unfused and fused, plus the cost of one training step.

    python benchmarks/model_speed.py                       # writes benchmarks/results/model_speed_cpu.md
    python benchmarks/model_speed.py --configs yolo11n.yaml --imgsz 320 --runs 5

Latency: median of `--runs` forward passes (batch 1, eval mode, torch.inference_mode) after 2 warm-up passes.
Training step: forward + loss + backward + SGD step at `--train-imgsz`, batch `--train-batch`, median of 3
after one warm-up step. Measure on an otherwise idle machine; the report records the machine and threads.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.hyperparameters import hyperparameters_for  # noqa: E402
from losses import build_loss  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402
from models.summary import count_parameters, gflops  # noqa: E402

DEFAULT_CONFIGS = [
    "yolov5n.yaml",
    "yolov5s.yaml",
    "yolo11n.yaml",
    "yolov5s_mobileone.yaml",
    "yolo11n_mobileone.yaml",
    "yolo11n_mobilenetv4.yaml",
    "yolov5n_mobilenetv4.yaml",
    "yolo11n_inceptionnext.yaml",
]


def median_seconds(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency_ms(model: torch.nn.Module, imgsz: int, runs: int) -> float:
    image = torch.rand(1, 3, imgsz, imgsz)
    with torch.inference_mode():
        return median_seconds(lambda: model(image), runs, warmup=2) * 1e3


def train_step_s(cfg: str, imgsz: int, batch: int) -> float:
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=1).train()
    hyp = hyperparameters_for(model)
    loss_fn = build_loss(model, hyp, imgsz=imgsz)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images = torch.rand(batch, 3, imgsz, imgsz)
    targets = torch.tensor([[i, 0, 0.5, 0.5, 0.1, 0.1] for i in range(batch)], dtype=torch.float32)

    def step() -> None:
        loss, _ = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return median_seconds(step, runs=3, warmup=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--train-imgsz", type=int, default=416)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_speed_cpu.md"))
    args = p.parse_args(argv)

    rows = []
    for cfg in args.configs:
        torch.manual_seed(0)
        model = DetectionModel(cfg).eval()
        params, flops = count_parameters(model), gflops(model, args.imgsz)
        unfused = latency_ms(model, args.imgsz, args.runs)
        model.fuse()
        fused_params, fused_flops = count_parameters(model), gflops(model, args.imgsz)
        fused = latency_ms(model, args.imgsz, args.runs)
        step = train_step_s(cfg, args.train_imgsz, args.train_batch)
        row = (
            f"| {cfg} | {params / 1e6:.2f}M / {flops:.1f} | {fused_params / 1e6:.2f}M / {fused_flops:.1f} "
            f"| {unfused:.0f} | {fused:.0f} | {step:.2f} |"
        )
        print(row, flush=True)
        rows.append(row)

    header = [
        f"# CPU speed of the configs ({date.today().isoformat()})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}.",
        f"Command: `python benchmarks/model_speed.py {' '.join(argv or sys.argv[1:])}`".rstrip(),
        "",
        f"Latency: batch 1 at {args.imgsz}x{args.imgsz}, eval, median of {args.runs}. "
        f"Train step: batch {args.train_batch} at {args.train_imgsz}, forward+loss+backward+SGD, median of 3.",
        "",
        "| config | params / GFLOPs | fused params / GFLOPs | latency ms | fused latency ms | train step s |",
        "|---|---|---|---|---|---|",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
