"""Print a model's layer table and summary: `python models/yolo.py --cfg yolo11n.yaml [--fuse]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from models.summary import describe_model  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cfg", default="yolov5s.yaml", help="model YAML: a name under cfg/ or a path")
    parser.add_argument("--nc", type=int, default=None, help="override the number of classes")
    parser.add_argument("--scale", default=None, help="scale letter for configs with `scales` (n/s/m/l/x)")
    parser.add_argument(
        "--imgsz",
        "--img",
        "--img-size",
        type=positive_int,
        default=640,
        help="image size for GFLOPs and the fuse check",
    )
    parser.add_argument("--fuse", action="store_true", help="also fuse, print the fused summary and the max difference")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Describe the model the command line names; exit status 2 on a bad config."""
    args = parse_args(argv)
    try:
        describe_model(args.cfg, args.nc, args.scale, args.imgsz, args.fuse)
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
