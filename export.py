"""Export a trained model to TorchScript, ONNX or OpenVINO, each checked against PyTorch and timed.

    python export.py --include onnx                      # newest runs/train/*/weights/best.pt
    python export.py --weights best.pt --include torchscript onnx --dynamic --imgsz 640

The ONNX output layout is described in engine/export.py.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.export import export  # noqa: E402
from engine.export_options import ExportOptions  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.options import parse_options  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Export with the command line's options; exit status 2 on bad input, 1 when a format failed."""
    options = parse_options(ExportOptions, argv, description=__doc__)
    try:
        results = export(**asdict(options))
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
