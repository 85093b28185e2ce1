"""Backbones usable as multi-output stages in YAML configs; importing this package registers them."""

from models.backbones import mobilenetv4  # registers MobileNetV4ConvSmall ... MobileNetV4HybridLarge
from models.backbones.stage import MultiOutputStage, stage_outputs
from models.backbones.timm_backbone import TimmBackbone  # timm itself is imported only when one is built
from models.backbones.torchvision_backbone import TorchvisionBackbone

__all__ = ["MultiOutputStage", "TimmBackbone", "TorchvisionBackbone", "mobilenetv4", "stage_outputs"]
