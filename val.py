"""Validate a detector: P, R, mAP50, mAP50-95 (COCO-consistent), speed, plots.

python val.py --weights runs/train/exp/weights/best.pt --data trees.yaml
python val.py --weights best.onnx --data trees.yaml --imgsz 416 --save-json
python val.py --task speed --weights best.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.val_run import TASKS, ValOptions, run_val  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = ValOptions()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help=".pt, .torchscript or .onnx (default: the newest trained best.pt)")
    p.add_argument("--data", default=None, help="dataset YAML name under data/ or a path (default: the training data)")
    p.add_argument("--imgsz", "--img", type=int, default=None, help="inference size (default: the training size)")
    p.add_argument("--batch-size", "--batch", type=int, default=d.batch_size)
    p.add_argument("--conf-thres", type=float, default=d.conf_thres)
    p.add_argument("--iou-thres", type=float, default=None, help="NMS IoU (default 0.6 anchor / 0.7 DFL heads)")
    p.add_argument("--max-det", type=int, default=d.max_det)
    p.add_argument("--task", choices=TASKS, default=d.task, help="val or test split, or speed only")
    p.add_argument("--single-cls", action="store_true", help="treat every class as one")
    p.add_argument(
        "--rect",
        action="store_true",
        help="rectangular batches, as YOLOv5 validates (faster on non-square images; the default letterboxes "
        "every image into the imgsz square, as a fixed-size export must, so all formats score alike)",
    )
    p.add_argument("--augment", action="store_true", help="test-time augmentation (flips and scales)")
    p.add_argument("--verbose", action="store_true", help="per-class metrics")
    p.add_argument("--save-txt", action="store_true", help="write detections to <save dir>/labels/*.txt")
    p.add_argument("--save-conf", action="store_true", help="add confidences to --save-txt")
    p.add_argument("--save-json", action="store_true", help="write COCO JSON and score it with pycocotools")
    p.add_argument(
        "--plots", action=argparse.BooleanOptionalAction, default=True, help="curves, confusion matrix, batches"
    )
    p.add_argument("--device", default=d.device, help="cpu, 0 or cuda:0 (default: CUDA if available)")
    p.add_argument("--half", action="store_true", help="fp16 inference (CUDA only)")
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--project", default=d.project)
    p.add_argument("--name", default=d.name)
    p.add_argument("--exist-ok", action="store_true")
    p.add_argument("--runs-dir", default=d.runs_dir, help="where trained weights are looked for without --weights")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run_val(ValOptions(**vars(args)))
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
