"""Where a training step's time goes, layer by layer: forward time of each top-level layer of a config in training
mode (BatchNorm on batch statistics, channels-last as training on the CPU uses), then the whole backward pass.

python benchmarks/layer_times.py --cfg yolov5s_mobileone.yaml --imgsz 416 --batch 16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.detection_model import DetectionModel  # noqa: E402


def layer_forward_times(model: DetectionModel, images: torch.Tensor) -> tuple[dict[str, float], float, float]:
    """Seconds per top-level layer in one forward pass, the forward's and the backward's total."""
    times: dict[str, float] = {}
    handles = []
    for index, layer in enumerate(model.model):
        name = f"{index}: {type(layer).__name__}"
        handles.append(layer.register_forward_pre_hook(lambda *_, n=name: times.__setitem__(n, -time.perf_counter())))
        handles.append(
            layer.register_forward_hook(lambda *_, n=name: times.__setitem__(n, times[n] + time.perf_counter()))
        )
    try:
        started = time.perf_counter()
        outputs = model(images)
        forward = time.perf_counter() - started
        started = time.perf_counter()
        sum(output.float().mean() for output in outputs).backward()
        backward = time.perf_counter() - started
    finally:
        for handle in handles:
            handle.remove()
    return times, forward, backward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="the last round is reported (the first warms up)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = DetectionModel(args.cfg).train().to(memory_format=torch.channels_last)
    images = torch.rand(args.batch, 3, args.imgsz, args.imgsz).contiguous(memory_format=torch.channels_last)
    for _ in range(args.rounds):
        model.zero_grad(set_to_none=True)
        times, forward, backward = layer_forward_times(model, images)
    print(
        f"{args.cfg}, batch {args.batch} at {args.imgsz}, {torch.get_num_threads()} threads: forward {forward:.2f} s, "
        f"backward {backward:.2f} s"
    )
    for name, seconds in times.items():
        print(f"  {name:<24} {seconds:7.3f} s  {seconds / forward:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
