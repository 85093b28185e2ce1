"""Backbones usable as multi-output stages in YAML configs."""

from models.backbones.inception_next import InceptionNeXt
from models.backbones.mobileone import MobileOneBackbone
from models.backbones.stage import MultiOutputStage, stage_outputs
from models.backbones.weights import load_backbone_weights, load_stage_weights

__all__ = [
    "InceptionNeXt", "MobileOneBackbone", "MultiOutputStage", "load_backbone_weights", "load_stage_weights",
    "stage_outputs",
]
