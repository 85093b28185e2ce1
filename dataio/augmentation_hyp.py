"""The augmentation section of the hyperparameter files (data/hyps/*.yaml): what the training dataset reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from utils.sections import read_section


@dataclass(frozen=True)
class AugmentationHyp:
    """Augmentation strengths and probabilities; a file may leave any out (these are the references' values)."""

    hsv_h: float = 0.015  # hue jitter (fraction)
    hsv_s: float = 0.7  # saturation jitter (fraction)
    hsv_v: float = 0.4  # value jitter (fraction)
    degrees: float = 0.0  # rotation (+/- deg)
    translate: float = 0.1  # translation (+/- fraction)
    scale: float = 0.5  # scale gain (+/-)
    shear: float = 0.0  # shear (+/- deg)
    perspective: float = 0.0  # perspective (+/- fraction), 0-0.001
    flipud: float = 0.0  # vertical flip probability
    fliplr: float = 0.5  # horizontal flip probability
    mosaic: float = 1.0  # mosaic probability
    mixup: float = 0.0  # mixup probability

    @classmethod
    def read(cls, hyp: AugmentationHyp | Mapping[str, Any] | None) -> AugmentationHyp:
        """The section as given, read from a flat hyperparameter mapping (other keys ignored), or the defaults."""
        if isinstance(hyp, cls):
            return hyp
        return read_section(cls, hyp or {}, "augmentation hyperparameters")
