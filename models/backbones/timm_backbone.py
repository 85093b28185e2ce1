"""Any timm model as a multi-output stage: `[-1, 1, TimmBackbone, ['resnet18']]`.

Channels and strides come from timm's own `feature_info`; timm stays optional (imported when one is built).
Weights are random, or a local checkpoint file of the full timm model, loaded through timm's own
pretrained-loading path (nothing is downloaded).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch

from models.backbones.levels import OptionalDependencyError, deepest_per_level
from models.backbones.stage import MultiOutputStage
from models.backbones.weights import read_state_dict, resolve_weights_argument
from models.layer_spec import FeatureSpec, register_layer


def import_timm() -> Any:
    """Import timm or fail with how to get it."""
    try:
        import timm
    except ImportError:
        raise OptionalDependencyError(
            "TimmBackbone needs the optional package timm, which is not installed (pip install timm)"
        ) from None
    return timm


@register_layer()
class TimmBackbone(MultiOutputStage):
    """A timm model by name (any `timm.list_models()` entry with features_only support), one output per stride.

    Where timm reports several features at one stride the deepest is used; features at strides that are not
    powers of two >= 2 are dropped (they cannot fill a pyramid slot).
    """

    def __init__(
        self, in_channels: int, model_name: str = "resnet18", weights: str | Path | bool | None = None
    ) -> None:
        super().__init__()
        timm = import_timm()
        if not isinstance(model_name, str) or not timm.is_model(model_name):
            close = difflib.get_close_matches(str(model_name), timm.list_models(), n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"TimmBackbone: unknown timm model {model_name!r}{hint}")
        path = resolve_weights_argument(weights, "TimmBackbone")
        kwargs: dict[str, Any] = {"features_only": True, "in_chans": in_channels, "pretrained": False}
        if path is not None:
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": read_state_dict(path)[0]})
        try:
            self.body = timm.create_model(model_name, **kwargs)
        except Exception as e:  # e.g. a model without features_only support
            raise ValueError(f"TimmBackbone: timm cannot build {model_name!r} as a feature extractor: {e}") from e
        self.model_name = model_name
        info = self.body.feature_info
        reductions, channels = info.reduction(), info.channels()
        self.take = deepest_per_level(reductions)
        if not self.take:
            raise ValueError(
                f"TimmBackbone: {model_name!r} has no output at a power-of-two stride (strides {reductions})"
            )
        self.feature_info = [FeatureSpec(int(channels[i]), float(reductions[i])) for i in self.take]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        return [features[i] for i in self.take]


def timm_available() -> bool:
    """True when timm can be imported (for skipping checks that need it)."""
    try:
        import_timm()
    except OptionalDependencyError:
        return False
    return True


__all__ = ["TimmBackbone", "import_timm", "timm_available"]
