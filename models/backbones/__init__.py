"""Backbones usable as multi-output stages in YAML configs; importing this package registers them."""

from models.backbones import mobilenetv4  # registers MobileNetV4ConvSmall ... MobileNetV4HybridLarge
from models.backbones.inception_next import InceptionNeXt
from models.backbones.mobileone import MobileOneBackbone
from models.backbones.stage import MultiOutputStage, stage_outputs
from models.backbones.timm_backbone import TimmBackbone  # timm itself is imported only when one is built
from models.backbones.torchvision_backbone import TorchvisionBackbone
from models.backbones.weights import load_backbone_weights, load_stage_weights

__all__ = [
    "InceptionNeXt",
    "MobileOneBackbone",
    "MultiOutputStage",
    "TimmBackbone",
    "TorchvisionBackbone",
    "load_backbone_weights",
    "load_stage_weights",
    "mobilenetv4",
    "stage_outputs",
]
