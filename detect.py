"""Run a detector on images, folders, globs, videos, webcams, .txt lists or streams.

python detect.py                                     # newest runs/train/*/weights/best.pt on data/images
python detect.py --source data/images/OSBS_029.jpg
python detect.py --weights best.onnx --source data/trees/images/val --save-txt
python detect.py --weights best.pt --source 0        # webcam
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.detect import detect  # noqa: E402
from engine.predict_options import PredictOptions  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.options import parse_options  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Detect with the command line's options; exit status 2 on bad input, 1 when no input could be read."""
    options = parse_options(PredictOptions, argv, description=__doc__)
    try:
        run = detect(**asdict(options))
    except USER_ERRORS as e:
        return report_user_error(e)
    return 1 if run.failures and not run.results else 0


if __name__ == "__main__":
    sys.exit(main())
