"""Print a model's layer table and summary: `python models/yolo.py --cfg yolo11n.yaml [--fuse]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.config import ConfigError  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402
from models.reparam import randomize_batchnorm  # noqa: E402
from models.summary import layer_table, summary_line  # noqa: E402
from utils.compare import relative_max_difference  # noqa: E402
from utils.logging import LOGGER  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cfg", default="yolov5s.yaml", help="model YAML: a name under cfg/ or a path")
    parser.add_argument("--nc", type=int, default=None, help="override the number of classes")
    parser.add_argument("--scale", default=None, help="scale letter for configs with `scales` (n/s/m/l/x)")
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs and the fuse check")
    parser.add_argument("--fuse", action="store_true", help="also fuse, print the fused summary and the max difference")
    return parser.parse_args(argv)


def describe(cfg: str, nc: int | None = None, scale: str | None = None, imgsz: int = 640, fuse: bool = False) -> float | None:
    """Build `cfg`, print its table and summary; with `fuse`, check fused against unfused and return the
    relative max difference of the eval outputs."""
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=nc, scale=scale)
    name = Path(cfg).stem
    LOGGER.info(layer_table(model.model, model.records))
    LOGGER.info(summary_line(name, model, imgsz))
    if not fuse:
        return None
    randomize_batchnorm(model).eval()
    image = torch.rand(1, model.in_channels, imgsz, imgsz)
    with torch.no_grad():
        unfused = model(image)
        model.fuse()
        fused = model(image)
    difference = relative_max_difference(unfused, fused)
    LOGGER.info(summary_line(f"{name} (fused)", model, imgsz))
    LOGGER.info(f"max |fused - unfused| = {difference:.3g}")
    return difference


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        describe(args.cfg, args.nc, args.scale, args.imgsz, args.fuse)
    except ConfigError as e:
        LOGGER.error(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
