"""How validation letterboxes its images: one rule for training's per-epoch validation and val.py, every format.

By default every image is letterboxed into the imgsz x imgsz square, the one input a fixed-size export
accepts, so a model scores the same as `.pt`, `.torchscript` and `.onnx` (fixed or `--dynamic`), and val.py
on best.pt repeats the figures the training run logged. YOLOv5's rectangular batches are opt-in (`rect=True`,
val.py `--rect`, models that take any input size only): less padding, so faster on non-square images, but
with their padding of half a stride a square image runs at imgsz + stride (448 for 416), a different input
than the export gets, and the metrics move with it (mAP50-95 0.120 vs 0.123 for a yolov5n and its fixed-size
ONNX on one test set).
"""

from __future__ import annotations

from dataio.dataset import YoloDataset
from dataio.sources import SplitSource

RECT_PAD = 0.5  # rectangular batches grow by half a stride, as the references validate


def validation_dataset(
    source: SplitSource,
    imgsz: int,
    stride: int,
    batch_size: int,
    *,
    rect: bool = False,
    single_cls: bool = False,
    nc: int | None = None,
    seed: int = 0,
    prefix: str = "val: ",
    cache_images: bool | str = False,
) -> YoloDataset:
    """The images and labels of a validation split, unaugmented, letterboxed as this module's docstring says."""
    return YoloDataset(
        source,
        imgsz=imgsz,
        augment=False,
        rect=rect,
        stride=stride,
        batch_size=batch_size,
        pad=RECT_PAD if rect else 0.0,
        single_cls=single_cls,
        nc=nc,
        seed=seed,
        prefix=prefix,
        cache_images=cache_images,
    )
