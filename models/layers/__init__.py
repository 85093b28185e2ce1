"""Layer types usable in YAML configs; importing this package registers them."""

from models.layers.attention import C2PSA, Attention, PSABlock
from models.layers.conv import Concat, Conv, DWConv, Focus, autopad
from models.layers.csp import C3, Bottleneck, BottleneckCSP, C2f, C3k, C3k2
from models.layers.mobileone import MobileOne, MobileOneBlock
from models.layers.pooling import SPP, SPPF

__all__ = [
    "C2PSA",
    "Attention",
    "PSABlock",
    "Concat",
    "Conv",
    "DWConv",
    "Focus",
    "autopad",
    "C3",
    "C2f",
    "C3k",
    "C3k2",
    "Bottleneck",
    "BottleneckCSP",
    "SPP",
    "SPPF",
    "MobileOne",
    "MobileOneBlock",
]
