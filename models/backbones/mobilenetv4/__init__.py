"""MobileNetV4 (arXiv 2404.10518) as multi-output stages; importing this package registers the five variants."""

from models.backbones.mobilenetv4.stage import (
    MobileNetV4,
    MobileNetV4ConvLarge,
    MobileNetV4ConvMedium,
    MobileNetV4ConvSmall,
    MobileNetV4HybridLarge,
    MobileNetV4HybridMedium,
)

__all__ = [
    "MobileNetV4",
    "MobileNetV4ConvLarge",
    "MobileNetV4ConvMedium",
    "MobileNetV4ConvSmall",
    "MobileNetV4HybridLarge",
    "MobileNetV4HybridMedium",
]
