"""Backbones usable as multi-output stages in YAML configs; importing this package registers them."""

from models.backbones.stage import MultiOutputStage, stage_outputs
from models.backbones import mobilenetv4  # noqa: F401  (registers MobileNetV4ConvSmall ... HybridLarge)
from models.backbones.timm_backbone import TimmBackbone  # noqa: F401  (timm itself is imported lazily)
from models.backbones.torchvision_backbone import TorchvisionBackbone  # noqa: F401

__all__ = ["MultiOutputStage", "stage_outputs", "TimmBackbone", "TorchvisionBackbone"]
