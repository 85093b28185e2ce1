"""Run a detector on images, folders, globs, videos, webcams, .txt lists or streams.

python detect.py                                     # newest runs/train/*/weights/best.pt on data/images
python detect.py --source data/images/OSBS_029.jpg
python detect.py --weights best.onnx --source data/trees/images/val --save-txt
python detect.py --weights best.pt --source 0        # webcam
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.detect import SAMPLE_IMAGES, detect  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--weights",
        default=None,
        help="model: .pt, .torchscript, .onnx or *_openvino_model/ "
        "(default: the newest <runs-dir>/train/*/weights/best.pt)",
    )
    p.add_argument(
        "--source",
        default=str(SAMPLE_IMAGES),
        help="file, folder, glob, video, webcam index, .txt list, URL (default: the sample images in data/images)",
    )
    p.add_argument(
        "--imgsz", "--img", "--img-size", nargs="+", type=int, help="inference size h [w] (default: the training size)"
    )
    p.add_argument("--conf-thres", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=1000, help="maximum detections per image")
    p.add_argument("--device", default="", help="cpu, 0, 0,1 or cuda:0 (default: CUDA if available)")
    p.add_argument("--classes", nargs="+", type=int, help="keep only these class indices, e.g. --classes 0 2")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--save-txt", action="store_true", help="save labels to <save dir>/labels/*.txt")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt labels")
    p.add_argument("--save-crop", action="store_true", help="save each detection's crop to <save dir>/crops/<class>/")
    p.add_argument("--nosave", action="store_true", help="do not save annotated images or videos")
    p.add_argument("--line-thickness", type=int, default=3, help="box line thickness in pixels")
    p.add_argument("--hide-labels", action="store_true", help="draw boxes without labels")
    p.add_argument("--hide-conf", action="store_true", help="draw labels without confidences")
    p.add_argument("--vid-stride", type=int, default=1, help="use every n-th video frame")
    p.add_argument("--half", action="store_true", help="fp16 inference of a .pt model (CUDA only)")
    p.add_argument("--runs-dir", default="runs", help="runs root: trained weights are looked for in <runs-dir>/train")
    p.add_argument("--project", default=None, help="save results to <project>/<name> (default: <runs-dir>/detect)")
    p.add_argument("--name", default="exp", help="save results to <project>/<name>")
    p.add_argument("--exist-ok", action="store_true", help="reuse <project>/<name> instead of numbering a new one")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Detect with the command line's options; exit status 2 on bad input, 1 when no input could be read."""
    args = parse_args(argv)
    try:
        run = detect(**vars(args))
    except USER_ERRORS as e:
        return report_user_error(e)
    return 1 if run.failures and not run.results else 0


if __name__ == "__main__":
    sys.exit(main())
