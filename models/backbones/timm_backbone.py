"""Any timm model as a multi-output stage: `[-1, 1, TimmBackbone, ['resnet18']]`.

Channels and strides come from timm's own `feature_info`; timm stays optional (imported when one is built).
Weights are random, or a local checkpoint file (of the full timm model, of timm's features-only model or of
this stage), loaded like every backbone's by `load_stage_weights` (nothing is downloaded).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from models.backbones.levels import OptionalDependencyError, deepest_per_level
from models.backbones.stage import MultiOutputStage
from models.backbones.weights import resolve_weights_argument, under_prefix
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
        self.weights_file = resolve_weights_argument(weights, "TimmBackbone")
        try:
            self.body = timm.create_model(model_name, features_only=True, in_chans=in_channels, pretrained=False)
        except Exception as e:  # e.g. a model without features_only support
            raise ValueError(f"TimmBackbone: timm cannot build {model_name!r} as a feature extractor: {e}") from e
        self.model_name, self.in_channels = model_name, in_channels
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

    def convert_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This stage's names for a checkpoint of the stage, of timm's features-only model, or of the full timm
        model (classifier included, as timm publishes them).

        A full-model checkpoint goes through timm's own pretrained loader (its checkpoint filter, first-conv
        adaptation to `in_channels`, feature-model naming) into a scratch copy of the body. That loader is not
        strict for feature models (what it cannot place keeps its random init, silently), so it runs a second
        time on the checkpoint with every float tensor set to NaN: a body tensor that comes out NaN came from
        the checkpoint. Only those are returned, so `load_stage_weights` reports (or refuses) the rest.
        """
        converted = under_prefix(state_dict, self.state_dict().keys(), "body.")
        if converted is not None:
            return converted
        loaded = self._body_loaded_by_timm(state_dict)
        tagged = self._body_loaded_by_timm({k: _nan_like(v) for k, v in state_dict.items()})
        came_from_checkpoint = {k for k, v in tagged.items() if v.is_floating_point() and v.isnan().all()}
        modules = {k.rpartition(".")[0] for k in came_from_checkpoint}  # integer buffers go with their module
        return {
            f"body.{k}": v
            for k, v in loaded.items()
            if k in came_from_checkpoint or (not v.is_floating_point() and k.rpartition(".")[0] in modules)
        }

    def _body_loaded_by_timm(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The state dict of a features-only timm model built with `state_dict` as its pretrained weights."""
        timm = import_timm()
        timm_log = logging.getLogger("timm")
        level = timm_log.level
        timm_log.setLevel(logging.ERROR)  # its missing/unexpected-key notes: load_stage_weights reports these
        try:
            body = timm.create_model(
                self.model_name,
                features_only=True,
                in_chans=self.in_channels,
                pretrained=True,
                pretrained_cfg_overlay={"state_dict": dict(state_dict)},  # a copy: timm edits it while loading
            )
        except (RuntimeError, KeyError, ValueError) as e:  # e.g. a tensor of another shape
            reason = " ".join(str(e).split())
            raise ValueError(
                f"not a checkpoint of timm's {self.model_name!r} (full model, features-only model or this stage): "
                f"timm's loader says: {reason[:300]}{'...' if len(reason) > 300 else ''}"
            ) from None
        finally:
            timm_log.setLevel(level)
        return body.state_dict()


def _nan_like(tensor: torch.Tensor) -> torch.Tensor:
    return torch.full_like(tensor, float("nan")) if tensor.is_floating_point() else tensor


__all__ = ["TimmBackbone", "import_timm"]
