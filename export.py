"""Export a trained model to TorchScript, ONNX or OpenVINO, each checked against PyTorch and timed.

    python export.py --include onnx                      # newest runs/train/*/weights/best.pt
    python export.py --weights best.pt --include torchscript onnx --dynamic --imgsz 640

The ONNX output layout is described in engine/export.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.export import DEFAULT_OPSET, FORMATS, export  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--weights", default=None, help="checkpoint .pt (default: the newest <runs-dir>/train/*/weights/best.pt)"
    )
    p.add_argument("--include", nargs="+", default=["torchscript", "onnx"], choices=FORMATS, help="formats to write")
    p.add_argument(
        "--imgsz", "--img", "--img-size", nargs="+", type=int, help="input size h [w] (default: the training size)"
    )
    p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=1, help="batch size of the export")
    p.add_argument("--dynamic", action="store_true", help="free batch, height and width axes")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX graph (needs onnxsim)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    p.add_argument("--half", action="store_true", help="fp16 export (CUDA only)")
    p.add_argument("--device", default="cpu", help="cpu, 0 or cuda:0")
    p.add_argument("--runs-dir", default="runs", help="runs root: trained weights are looked for in <runs-dir>/train")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Export with the command line's options; exit status 2 on bad input, 1 when a format failed."""
    args = parse_args(argv)
    try:
        results = export(**vars(args))
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
