"""Train a YOLO detector.

    python train.py --cfg yolov5s_mobileone.yaml            # bundled trees data, defaults tuned to learn fast
    python train.py --cfg yolo11n.yaml --data my.yaml --epochs 100 --imgsz 640
    python train.py --resume                                # continue the newest run exactly
    torchrun --nproc_per_node 2 train.py --cfg yolo11n.yaml # several processes (GPUs, or CPU with gloo)
"""

from __future__ import annotations

import argparse
import sys

from engine.train_options import add_train_arguments, options_from_args
from engine.trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    train(options_from_args(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
