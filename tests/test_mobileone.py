"""MobileOne: the block's re-parameterization, the YOLOv5 stage layer, and S0-S4 equal to timm's mobileone_s*."""

from __future__ import annotations

import pytest
import torch

from models.backbones.mobileone import MobileOneS0
from models.backbones.weights import load_stage_weights
from models.detection_model import DetectionModel
from models.layer_spec import LAYERS
from models.layers.mobileone import MobileOne, MobileOneBlock
from models.reparam import has_batchnorm, randomize_batchnorm, reparameterize_model
from tests.backbone_reference import TOLERANCE, level_differences, parameter_count, perturb
from utils.compare import relative_max_difference

BLOCK_CASES = {  # in, out, kernel, stride, groups, branches, SE
    "depthwise-identity-k4": (16, 16, 3, 1, 16, 4, False),
    "depthwise-stride2": (16, 16, 3, 2, 16, 2, False),
    "pointwise-identity-se": (16, 16, 1, 1, 1, 3, True),
    "pointwise-widening": (16, 24, 1, 1, 1, 1, False),
    "dense-stem-stride2": (3, 16, 3, 2, 1, 1, False),
    "grouped-5x5-identity": (16, 16, 5, 1, 4, 2, False),
}


@pytest.mark.parametrize("case", BLOCK_CASES.values(), ids=BLOCK_CASES.keys())
def test_block_reparameterizes_exactly(case: tuple) -> None:
    block = randomize_batchnorm(MobileOneBlock(*case)).eval()
    x = torch.randn(2, case[0], 15, 18)  # odd size: stride 2 with padding
    with torch.no_grad():
        before = block(x)
        block.reparameterize()
        after = block(x)
    assert relative_max_difference(before, after) <= 1e-5
    assert not has_batchnorm(block)
    assert block.conv_branches is None and block.scale_branch is None and block.identity_branch is None
    convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * case[6]  # the fused conv (+ the SE's two)

    state = {k: v.clone() for k, v in block.state_dict().items()}
    block.reparameterize()  # idempotent
    again = block.state_dict()
    assert again.keys() == state.keys() and all(torch.equal(again[k], v) for k, v in state.items())

    direct = MobileOneBlock(*case, fused=True).eval()  # built fused, loads the folded weights as they are
    direct.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(direct(x), after)


def test_branches_are_what_the_paper_describes() -> None:
    block = MobileOneBlock(16, 16, 3, 1, 16, branches=4)
    assert len(block.conv_branches) == 4 and block.scale_branch is not None and block.identity_branch is not None
    assert MobileOneBlock(16, 16, 3, 2, 16).identity_branch is None  # stride 2: no identity
    assert MobileOneBlock(16, 32, 1).identity_branch is None and MobileOneBlock(16, 32, 1).scale_branch is None


def test_stage_layer_units() -> None:
    stage = MobileOne(8, 16, n=3, branches=2, stride=2, se_units=1)
    blocks = list(stage.blocks)
    assert len(blocks) == 6 and stage.stride_factor == 2
    assert (blocks[0].in_channels, blocks[0].groups, blocks[0].stride) == (8, 8, 2)  # depthwise, strided, on c1
    assert (blocks[1].in_channels, blocks[1].out_channels, blocks[1].kernel_size) == (8, 16, 1)
    assert all(b.in_channels == 16 and b.stride == 1 for b in blocks[2:])
    assert [not isinstance(b.se, torch.nn.Identity) for b in blocks] == [False] * 4 + [True] * 2
    assert stage(torch.rand(1, 8, 20, 24)).shape == (1, 16, 10, 12)


def test_yolov5s_mobileone_builds_as_written() -> None:
    model = DetectionModel("yolov5s_mobileone.yaml")
    assert model.nc == 2 and model.stride.tolist() == [8.0, 16.0, 32.0]
    mobileone_rows = [r for r in model.records if r.name == "MobileOne"]
    # [c1, c2, n after depth_multiple 0.33, k, stride]
    assert [r.args for r in mobileone_rows] == [
        [64, 64, 1, 4, 1],
        [128, 128, 3, 4, 1],
        [256, 256, 3, 4, 1],
        [512, 512, 1, 4, 1],
    ]
    image = torch.rand(1, 3, 640, 640)
    randomize_batchnorm(model).eval()
    with torch.no_grad():
        unfused = model(image)
        assert unfused.shape == (1, 3 * (80 * 80 + 40 * 40 + 20 * 20), 5 + 2)
        model.fuse()
        assert relative_max_difference(unfused, model(image)) <= 1e-4
    assert not any(isinstance(m, MobileOneBlock) and not m.is_fused for m in model.modules())


def test_fused_s0_parameter_count() -> None:
    """REFERENCE.md: timm's mobileone_s0 features_only has 1.054M parameters after re-parameterization."""
    stage = reparameterize_model(MobileOneS0().eval())
    fused = parameter_count(stage)
    assert round(fused / 1e6, 3) == 1.054
    assert parameter_count(MobileOneS0(fused=True)) == fused  # built directly in fused form: same network


# --- equal to timm --------------------------------------------------------------------------------------------

timm = pytest.importorskip("timm", reason="timm (test dependency) is the numerical reference for MobileOne")


# REFERENCE.md: timm's features_only parameter counts, training form / re-parameterized, in millions
REFERENCE_PARAMS = {
    "s0": (4.268, 1.054),
    "s1": (3.544, 3.484),
    "s2": (5.836, 5.759),
    "s3": (8.122, 8.029),
    "s4": (12.902, 12.789),
}


@pytest.mark.parametrize("variant", list(REFERENCE_PARAMS))
def test_equal_to_timm_features(variant: str) -> None:
    ours = LAYERS.get(f"MobileOne{variant.upper()}").cls(3).eval()
    reference = perturb(timm.create_model(ours.timm_name, pretrained=False, features_only=True)).eval()
    counts = load_stage_weights(ours, reference.state_dict())
    assert sum(counts.values()) == len(ours.state_dict())  # every tensor came from the checkpoint
    assert list(counts) == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    assert ours.out_channels == reference.feature_info.channels()
    assert ours.out_strides == reference.feature_info.reduction()
    assert parameter_count(ours) == parameter_count(reference)
    assert round(parameter_count(ours) / 1e6, 3) == REFERENCE_PARAMS[variant][0]

    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        assert max(level_differences(expected, ours(x))) <= TOLERANCE
        reparameterize_model(ours)  # the walk DetectionModel.fuse does
        assert max(level_differences(expected, ours(x))) <= TOLERANCE
    assert round(parameter_count(ours) / 1e6, 3) == REFERENCE_PARAMS[variant][1]
    assert not has_batchnorm(ours)


def test_converter_full_classifier_and_deploy_checkpoints() -> None:
    ours = MobileOneS0().eval()
    full = perturb(timm.create_model("mobileone_s0", pretrained=False)).eval()
    converted = ours.convert_state_dict(full.state_dict())
    assert set(converted) == set(ours.state_dict())  # head.fc.* dropped, everything else mapped
    load_stage_weights(ours, full.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert relative_max_difference(full.forward_features(x), ours(x)[-1]) <= TOLERANCE

        # a re-parameterized (deploy) checkpoint fuses a fresh stage before loading
        deployed = timm.utils.reparameterize_model(full)
        fresh = MobileOneS0().eval()
        counts = load_stage_weights(fresh, deployed.state_dict())
        assert sum(counts.values()) == len(fresh.state_dict()) and not has_batchnorm(fresh)
        assert relative_max_difference(deployed.forward_features(x), fresh(x)[-1]) <= TOLERANCE
