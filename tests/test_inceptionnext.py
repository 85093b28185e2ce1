"""InceptionNeXt: atto/tiny/small/base equal to timm's inception_next_*, exact BatchNorm/layer-scale folding."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from models.backbones.inception_next import Downsample, InceptionNeXtAtto, MetaNeXtBlock
from models.backbones.weights import BackboneWeightsError, load_stage_weights
from models.layer_spec import LAYERS
from models.reparam import fold_preceding_batchnorm, has_batchnorm, randomize_batchnorm, reparameterize_model
from tests.backbone_reference import TOLERANCE, level_differences, parameter_count, perturb
from utils.compare import relative_max_difference


def test_fuse_folds_every_batchnorm_and_layer_scale() -> None:
    stage = perturb(InceptionNeXtAtto()).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        before = stage(x)
        reparameterize_model(stage)
        after = stage(x)
    assert max(level_differences(before, after)) <= 1e-5
    assert not has_batchnorm(stage)
    assert all(block.gamma is None for block in stage.modules() if isinstance(block, MetaNeXtBlock))
    state = {k: v.clone() for k, v in stage.state_dict().items()}
    reparameterize_model(stage)  # idempotent
    again = stage.state_dict()
    assert again.keys() == state.keys() and all(torch.equal(again[k], v) for k, v in state.items())


def test_fused_stage_refuses_unfused_weights() -> None:
    unfused = InceptionNeXtAtto().state_dict()
    with pytest.raises(BackboneWeightsError, match="before fusing"):
        load_stage_weights(reparameterize_model(InceptionNeXtAtto()), unfused)


def test_downsample_fold_is_exact_and_padded_convs_are_refused() -> None:
    downsample = randomize_batchnorm(Downsample(8, 16)).eval()
    x = torch.randn(1, 8, 10, 14)
    with torch.no_grad():
        before = downsample(x)
        downsample.reparameterize()
        assert relative_max_difference(before, downsample(x)) <= 1e-6
    with pytest.raises(ValueError, match="no padding"):
        fold_preceding_batchnorm(nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1))


def test_width_factor() -> None:
    stage = LAYERS.get("inceptionnext_atto").cls(3, False, 0.5)
    assert stage.out_channels == [24, 40, 80, 160] and stage.out_strides == [4, 8, 16, 32]
    assert [tuple(y.shape[1:]) for y in stage(torch.rand(1, 3, 64, 96))] == [
        (24, 16, 24),
        (40, 8, 12),
        (80, 4, 6),
        (160, 2, 3),
    ]


def test_pretrained_true_is_refused() -> None:
    with pytest.raises(BackboneWeightsError, match="download"):
        LAYERS.get("inceptionnext_tiny").cls(3, True)


# --- equal to timm --------------------------------------------------------------------------------------------

timm = pytest.importorskip("timm", reason="timm (test dependency) is the numerical reference for InceptionNeXt")


# REFERENCE.md: timm's features_only parameter counts in millions
REFERENCE_PARAMS = {"atto": 2.885, "tiny": 23.974, "small": 45.293, "base": 80.444}


@pytest.mark.parametrize("variant", list(REFERENCE_PARAMS))
def test_equal_to_timm_features(variant: str) -> None:
    ours = LAYERS.get(f"inceptionnext_{variant}").cls(3).eval()
    reference = perturb(timm.create_model(ours.timm_name, pretrained=False, features_only=True)).eval()
    counts = load_stage_weights(ours, reference.state_dict())
    assert sum(counts.values()) == len(ours.state_dict())
    assert list(counts) == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    assert ours.out_channels == reference.feature_info.channels()
    assert ours.out_strides == reference.feature_info.reduction()
    assert parameter_count(ours) == parameter_count(reference)
    assert round(parameter_count(ours) / 1e6, 3) == REFERENCE_PARAMS[variant]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        assert max(level_differences(expected, ours(x))) <= TOLERANCE
        reparameterize_model(ours)
        assert max(level_differences(expected, ours(x))) <= TOLERANCE
    assert not has_batchnorm(ours)


def test_converter_full_classifier_checkpoint() -> None:
    full = perturb(timm.create_model("inception_next_atto", pretrained=False)).eval()
    ours = InceptionNeXtAtto().eval()
    converted = ours.convert_state_dict(full.state_dict())
    assert set(converted) == set(ours.state_dict())  # head.* dropped, everything else mapped
    features = timm.create_model("inception_next_atto", pretrained=False, features_only=True)
    assert set(ours.convert_state_dict(features.state_dict())) == set(ours.state_dict())
    load_stage_weights(ours, full.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert relative_max_difference(full.forward_features(x), ours(x)[-1]) <= TOLERANCE
