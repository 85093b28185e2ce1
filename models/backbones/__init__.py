"""Backbones usable as multi-output stages in YAML configs."""

from models.backbones.stage import MultiOutputStage, stage_outputs

__all__ = ["MultiOutputStage", "stage_outputs"]
