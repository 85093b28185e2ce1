"""Write a YOLOv5 or ultralytics checkpoint once as a checkpoint of this project (tensors and config only).

    python -m tools.convert_weights yolov5s.pt yolov5s_safe.pt
    python -m tools.convert_weights yolo11n.pt yolo11n_safe.pt

The input is read through the restricted unpickler (nothing in it runs; models/foreign_import.py), mapped onto
the matching config of cfg/ and checked tensor by tensor; the output loads with `torch.load(weights_only=True)`
like any checkpoint this project writes. Every script also takes the original file directly (`--weights`); the
conversion saves the import on each later load and leaves a file that needs no special reader.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from models.checkpoint_model import read_weights  # noqa: E402
from utils.checkpoint import write_checkpoint_file  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.logging import LOGGER  # noqa: E402


def convert_weights(source: str | Path, target: str | Path) -> Path:
    """Read `source` (ours, or YOLOv5 / ultralytics) and write it to `target` in this project's format."""
    ckpt = read_weights(source)
    if "imported_from" not in ckpt:
        LOGGER.info(f"{source} is already a checkpoint of this project; writing it unchanged")
    path = write_checkpoint_file(target, ckpt)
    LOGGER.info(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB); it loads with weights_only=True")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a YOLOv5 or ultralytics .pt checkpoint (or one of this project)")
    parser.add_argument("target", help="where to write the checkpoint of this project")
    args = parser.parse_args(argv)
    try:
        convert_weights(args.source, args.target)
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
