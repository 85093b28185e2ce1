"""Time of one loss call and its backward, YOLOv5's loss against the task-aligned one, on the same raw outputs of
a yolov5n (batch 16, 416 px, 80 boxes per image as a trees mosaic holds), interleaved in random order.

OMP_NUM_THREADS=1 python benchmarks/loss_cost.py --rounds 7
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.hyperparameters import hyperparameters_for  # noqa: E402
from losses import build_loss  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402


def random_targets(batch: int, per_image: int, seed: int = 0) -> torch.Tensor:
    """(batch * per_image, 6) boxes of 3-11 % of the image side, anywhere inside it, one class."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch):
        xy = 0.05 + 0.9 * torch.rand(per_image, 2, generator=g)
        wh = 0.03 + 0.08 * torch.rand(per_image, 2, generator=g)
        rows.append(torch.cat((torch.full((per_image, 1), float(b)), torch.zeros(per_image, 1), xy, wh), 1))
    return torch.cat(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--boxes", type=int, default=80, help="boxes per image")
    parser.add_argument("--imgsz", type=int, default=416)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=1).train()
    with torch.no_grad():
        raw = model(torch.rand(args.batch, 3, args.imgsz, args.imgsz))
    targets = random_targets(args.batch, args.boxes)
    losses = {
        name: build_loss(model, hyperparameters_for(model, loss=name), imgsz=args.imgsz, name=name)
        for name in ("AnchorLoss", "AlignedAnchorLoss")
    }
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(args.rounds):
        for name in random.sample(list(losses), len(losses)):
            outputs = [x.clone().requires_grad_() for x in raw]
            start = time.perf_counter()
            total, _ = losses[name](outputs, targets)
            total.backward()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values) * 1000:.0f} ms over {args.rounds} rounds")
    print(
        f"(loss + backward; batch {args.batch}, {args.boxes} boxes per image, {args.imgsz} px, threads "
        f"{torch.get_num_threads()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
