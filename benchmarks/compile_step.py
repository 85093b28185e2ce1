"""Does torch.compile make the training step faster on CPU? Times one forward + loss + backward + SGD step of the
same model (same seed, the trainer's channels-last layout) eager and with the model's forward compiled (inductor;
the loss stays eager), taking turns step by step in one process; reports the compile time (the first step) and
the median of each.

    python benchmarks/compile_step.py --cfg yolov5s_mobileone.yaml --imgsz 416 --batch 16 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from losses import build_loss  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402
from utils.channels_last import to_channels_last  # noqa: E402


def make_step(cfg: str, imgsz: int, batch: int, compiled: bool) -> Callable[[], float]:
    """A closure running one training step of a fresh model (seed 0); returns its seconds."""
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=1).train()
    hyp_file = "hyp.scratch-anchor.yaml" if model.head.has_objectness else "hyp.scratch-dfl.yaml"
    hyp = yaml.safe_load((ROOT / "data" / "hyps" / hyp_file).read_text())
    loss_fn = build_loss(model, hyp, imgsz=imgsz)
    to_channels_last(model, torch.device("cpu"))
    images = torch.rand(batch, 3, imgsz, imgsz).contiguous(memory_format=torch.channels_last)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="timed steps of each, after two warm-up steps each")
    args = p.parse_args()
    steps = {name: make_step(args.cfg, args.imgsz, args.batch, name == "compiled") for name in ("eager", "compiled")}
    for name, step in steps.items():
        first = step()  # the compiled one compiles here
        step()  # a second warm-up: oneDNN primitives, the compiled graph's first real run
        print(f"{name}: first step {first:.1f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(step())
    eager = statistics.median(times["eager"])
    threads = torch.get_num_threads()
    print(f"{args.cfg}, batch {args.batch} at {args.imgsz} px, {threads} thread(s), torch {torch.__version__}")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"  {name:9s} median {median:.3f} s/step  ({median / eager:.2f} x eager)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
