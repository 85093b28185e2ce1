"""Task-aligned assigner time: losses/assigner.py against the dense formulation it replaced
(tests/dense_assigner_reference.py) on the same random inputs. The two take turns in random order in one process,
so a busy machine slows them alike; prints the median of each and the ratio dense / new.

    OMP_NUM_THREADS=1 python benchmarks/assigner_speed.py --imgsz 416 --batch 16 --boxes 20 80 --rounds 7

Point layouts: "dfl" is one point per cell (YOLO11 head, N = 3549 at 416 px), "anchor" one per (cell, anchor)
with three anchors per cell (the aligned anchor loss, N = 10647 at 416 px). Boxes have log-uniform sides between
2% and 60% of the image, centres uniform (boxes may cross the border); predictions are boxes around each point.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from losses.assigner import TaskAlignedAssigner  # noqa: E402
from tests.dense_assigner_reference import DenseTaskAlignedAssigner  # noqa: E402

STRIDES = (8.0, 16.0, 32.0)


def make_points(imgsz: int, per_cell: int) -> torch.Tensor:
    """(N, 2) cell centres in pixels, each repeated `per_cell` times per level, level by level."""
    levels = []
    for stride in STRIDES:
        cells = int(imgsz // stride)
        centres = (torch.arange(cells, dtype=torch.float32) + 0.5) * stride
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        levels.append(torch.stack((x, y), -1).reshape(1, -1, 2).expand(per_cell, -1, -1).reshape(-1, 2))
    return torch.cat(levels)


def make_inputs(points: torch.Tensor, imgsz: int, batch: int, boxes: int, nc: int, seed: int) -> tuple:
    """Random predictions and ground truth, the assigner's argument order."""
    gen = torch.Generator().manual_seed(seed)
    n = len(points)
    scores = torch.randn(batch, n, nc, generator=gen).sub(2).sigmoid()
    half = imgsz * torch.empty(batch, n, 2).uniform_(0.02, 0.3, generator=gen)
    centre = points + imgsz * 0.05 * torch.randn(batch, n, 2, generator=gen)
    pred = torch.cat((centre - half, centre + half), -1)
    side = imgsz * torch.empty(batch, boxes, 2).uniform_(math.log(0.02), math.log(0.6), generator=gen).exp()
    gt_centre = imgsz * torch.rand(batch, boxes, 2, generator=gen)
    gt = torch.cat((gt_centre - side / 2, gt_centre + side / 2), -1)
    labels = torch.randint(0, nc, (batch, boxes, 1), generator=gen).float()
    mask = torch.ones(batch, boxes, 1, dtype=torch.bool)
    return scores, pred, points, labels, gt, mask


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--boxes", type=int, nargs="+", default=[20, 80], help="boxes per image, one case each")
    p.add_argument("--nc", type=int, default=80)
    p.add_argument("--rounds", type=int, default=7, help="timed calls per implementation, after one warm-up each")
    args = p.parse_args()
    rng = random.Random(0)
    print(
        f"batch {args.batch} at {args.imgsz} px, nc {args.nc}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}"
    )
    for layout, per_cell in (("dfl", 1), ("anchor", 3)):
        points = make_points(args.imgsz, per_cell)
        for boxes in args.boxes:
            inputs = make_inputs(points, args.imgsz, args.batch, boxes, args.nc, seed=boxes)
            runs = {
                "dense": DenseTaskAlignedAssigner(args.nc, strides=STRIDES),
                "new": TaskAlignedAssigner(args.nc, strides=STRIDES),
            }
            times: dict[str, list[float]] = {name: [] for name in runs}
            for assigner in runs.values():
                assigner(*inputs)  # warm-up
            for _ in range(args.rounds):
                names = list(runs)
                rng.shuffle(names)
                for name in names:
                    start = time.perf_counter()
                    runs[name](*inputs)
                    times[name].append(time.perf_counter() - start)
            dense, new = (statistics.median(times[name]) * 1000 for name in ("dense", "new"))
            b, _, n = runs["new"].candidate_pairs(points, inputs[4], inputs[5])
            pairs_per_point = len(b) / (args.batch * len(points))
            share = len(torch.unique(b * len(points) + n)) / (args.batch * len(points))
            print(
                f"  {layout:6s} N={len(points):5d} boxes {boxes:3d} (points in some box {share:4.0%}, "
                f"pairs per point {pairs_per_point:4.2f}): dense {dense:8.1f} ms  "
                f"new {new:7.1f} ms  ratio {dense / new:5.1f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
