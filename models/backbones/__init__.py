"""Backbones usable as multi-output stages in YAML configs; importing this package registers them."""

from models.backbones.stage import MultiOutputStage, stage_outputs
from models.backbones import mobilenetv4  # noqa: F401  (registers MobileNetV4ConvSmall ... HybridLarge)

__all__ = ["MultiOutputStage", "stage_outputs"]
