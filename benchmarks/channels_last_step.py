"""Training-step time by memory layout: NCHW, plain channels-last, and the trainer's channels-last (which keeps the
convolutions torch's CPU backward gets wrong in NCHW, utils/channels_last.py). The layouts take turns step by step
in one process (in a new random order each round), so a busy machine slows them alike; reports the median of each
and its ratio to NCHW.

    python benchmarks/channels_last_step.py --cfg yolov5s_mobileone.yaml --imgsz 320 --batch 8 --rounds 7

`--skip-plain` leaves out plain channels-last, which crashes on configs the workaround exists for
(yolo11n_mobileone.yaml).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks.suite.timing import interleaved_medians  # noqa: E402
from losses import build_loss  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402
from utils.channels_last import to_channels_last  # noqa: E402


def make_step(cfg: str, layout: str, imgsz: int, batch: int, compiled: bool = False) -> Callable[[], float]:
    """A closure running one forward + loss + backward + SGD step of a fresh model (same seed) in `layout`; with
    `compiled`, the model's forward goes through torch.compile (benchmarks/compile_step.py). Returns its seconds."""
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=1).train()
    hyp_file = "hyp.scratch-anchor.yaml" if model.head.has_objectness else "hyp.scratch-dfl.yaml"
    hyp = yaml.safe_load((ROOT / "data" / "hyps" / hyp_file).read_text())
    loss_fn = build_loss(model, hyp, imgsz=imgsz)
    images = torch.rand(batch, 3, imgsz, imgsz)
    if layout == "channels-last (plain)":
        model.to(memory_format=torch.channels_last)
    elif layout == "channels-last (trainer)":
        to_channels_last(model, torch.device("cpu"))
    if layout != "NCHW":
        images = images.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    targets = torch.tensor([[i, 0, 0.5, 0.5, 0.1, 0.1] for i in range(batch)], dtype=torch.float32)

    def step() -> float:
        start = time.perf_counter()
        loss, _ = loss_fn(forward(images), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    return step


def print_step_medians(args: argparse.Namespace, medians_ms: dict[str, float], baseline: str) -> None:
    """The run's setting, then each candidate's median step time and its ratio to `baseline`'s."""
    threads = torch.get_num_threads()
    print(f"{args.cfg}, batch {args.batch} at {args.imgsz} px, {threads} thread(s), torch {torch.__version__}")
    width = max(map(len, medians_ms))
    for name, median in medians_ms.items():
        ratio = median / medians_ms[baseline]
        print(f"  {name:{width}s} median {median / 1000:.3f} s/step  ({ratio:.2f} x {baseline})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7, help="timed steps per layout, after one warm-up step each")
    p.add_argument("--skip-plain", action="store_true", help="leave out plain channels-last (it crashes on some)")
    args = p.parse_args()
    layouts = ["NCHW", "channels-last (trainer)"] + ([] if args.skip_plain else ["channels-last (plain)"])
    steps = {layout: make_step(args.cfg, layout, args.imgsz, args.batch) for layout in layouts}
    # one warm-up step each: allocations and oneDNN primitives
    medians = interleaved_medians(steps, runs=args.rounds, warmup=1)
    print_step_medians(args, medians, baseline="NCHW")
    return 0


if __name__ == "__main__":
    sys.exit(main())
