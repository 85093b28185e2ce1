"""Where a training step's time goes: data, forward, loss, backward, optimiser, EMA and other hooks.

    python benchmarks/train_step_profile.py --cfg yolov5s_mobileone.yaml --steps 12 --threads 2
    python benchmarks/train_step_profile.py --cfg yolo11n.yaml --imgsz 416 --batch-size 16 --out profile.md

The trainer runs its own loop on the bundled trees data (channels-last, EMA, clipping: exactly train.py's step) and
benchmarks/suite/step_timer.py times its phases; the first `--warmup` steps are left out (allocator and oneDNN
caches). Prints mean milliseconds per phase and training images/s; `--out FILE.md` also writes them.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite.training import profile_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    parser.add_argument("--data", default="trees.yaml")
    parser.add_argument("--loss", default=None)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=None, help="also write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = profile_training(
        args.cfg, args.data, args.imgsz, args.batch_size, args.steps, args.warmup, args.loss, args.channels_last
    )
    header = (
        f"{args.cfg}, loss {args.loss or 'default'}, {args.imgsz} px, batch {args.batch_size}, "
        f"{args.threads} threads, channels-last {args.channels_last}, {profile.timer.counted} steps after "
        f"{args.warmup}; torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    text = f"{header}\n\n{profile.timer.table()}\ndata-loader images/s: {profile.loader_images_per_s:.1f}"
    print(text)
    if args.out:
        Path(args.out).write_text(f"# Training step profile\n\n{text}\n")


if __name__ == "__main__":
    main()
