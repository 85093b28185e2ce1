"""Validate a detector: P, R, mAP50, mAP50-95 (COCO-consistent), speed, plots.

python val.py --weights runs/train/exp/weights/best.pt --data trees.yaml
python val.py --weights best.onnx --data trees.yaml --imgsz 416 --save-json
python val.py --task speed --weights best.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.val_options import ValOptions  # noqa: E402
from engine.val_run import run_val  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.options import parse_options  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    options = parse_options(ValOptions, argv, description=__doc__)
    try:
        run_val(options)
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
