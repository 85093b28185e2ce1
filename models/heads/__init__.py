"""Detection heads. The YAML name `Detect` picks the family from its args, as users of both formats expect:
`[nc, anchors]` builds the anchor-based YOLOv5 head, `[nc]` the anchor-free DFL head of YOLOv8/YOLO11."""

from __future__ import annotations

from models.heads.anchor_detect import AnchorDetect
from models.heads.base import DetectionHead
from models.heads.dfl_detect import DFL, DFLDetect
from models.layer_spec import LAYERS, LayerBuild, LayerContext, LayerEntry


def _detect_rule(_cls: type, ctx: LayerContext) -> LayerBuild:
    head = AnchorDetect if len(ctx.args) >= 2 else DFLDetect
    return head.from_config(ctx)


LAYERS.add("Detect", LayerEntry("Detect", DetectionHead, _detect_rule))

__all__ = ["AnchorDetect", "DFL", "DFLDetect", "DetectionHead"]
