"""Train or validate with `ThinDFLDetect` available to configs: YOLO11's DFL head with each box and class branch cut
down to one 1x1 convolution, as thin as YOLOv5's anchor head (benchmarks/results/anchor_convergence.md, item 8:
is the DFL family's lead over the anchor head its loss or its head's depth?).

    python benchmarks/thin_dfl_head.py train --cfg benchmarks/results/trees/yolo11-thin-dfl-head.yaml --scale n
    python benchmarks/thin_dfl_head.py val --weights runs/train/exp/weights/last.pt --data trees.yaml

Everything after `train` / `val` is train.py's / val.py's arguments; the layer is registered in this process only,
so its checkpoints load here, not in the plain scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch.nn as nn  # noqa: E402

from models.heads.dfl_detect import DFLDetect  # noqa: E402
from models.layer_spec import register_layer  # noqa: E402


@register_layer()
class ThinDFLDetect(DFLDetect):
    """DFLDetect whose box and class branches are one 1x1 convolution each (YOLOv5's head depth)."""

    def __init__(self, nc: int, in_channels: Sequence[int], strides: Sequence[float], reg_max: int = 16) -> None:
        super().__init__(nc, in_channels, strides, reg_max)
        self.box_convs = nn.ModuleList(nn.Sequential(nn.Conv2d(c, 4 * reg_max, 1)) for c in in_channels)
        self.cls_convs = nn.ModuleList(nn.Sequential(nn.Conv2d(c, nc, 1)) for c in in_channels)
        self.initialize_biases()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train", "val"):
        print(__doc__)
        return 2
    if argv[0] == "train":
        from train import main as run
    else:
        from val import main as run
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
