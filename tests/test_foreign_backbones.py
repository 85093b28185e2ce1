"""timm and torchvision models by name as multi-output stages: levels from their own metadata, YAML use,
local weights, fusing, and timm staying optional."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch
import torchvision

from models.backbones.levels import deepest_per_level, pyramid_level
from models.backbones.timm_backbone import TimmBackbone
from models.backbones.torchvision_backbone import TorchvisionBackbone
from models.backbones.weights import BackboneWeightsError
from models.config import ConfigError
from models.detection_model import DetectionModel
from models.reparam import has_batchnorm, randomize_batchnorm
from tests.helpers import build_stage
from utils.compare import relative_max_difference


def stage_config(module: str, args: list) -> dict:
    """A small YOLO11-style detector whose backbone is the given stage (P3, P4 = slots 2, 3; P5 flows on)."""
    return {
        "nc": 3,
        "scales": {"n": [0.5, 0.25, 1024]},
        "backbone": [[-1, 1, module, args], [-1, 1, "SPPF", [1024, 5]]],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 3], 1, "Concat", [1]],
            [-1, 1, "C3k2", [512, False]],  # 8
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 2], 1, "Concat", [1]],
            [-1, 1, "C3k2", [256, False]],  # 11
            [[11, 8, 5], 1, "Detect", ["nc"]],
        ],
    }


def check_outputs(stage: torch.nn.Module, height: int = 64, width: int = 96) -> None:
    with torch.no_grad():
        outputs = stage.eval()(torch.rand(1, 3, height, width))
    assert len(outputs) == len(stage.feature_info)
    for out, spec in zip(outputs, stage.feature_info):
        assert tuple(out.shape[1:]) == (spec.channels, height / spec.stride, width / spec.stride)


def test_level_selection() -> None:
    assert [pyramid_level(s) for s in (1, 2, 4, 14, 32)] == [None, 1, 2, None, 5]
    # the deepest map at each stride wins; non-power-of-two strides are dropped
    assert deepest_per_level([1, 2, 4, 4, 8, 14, 16, 16, 32]) == [1, 3, 4, 7, 8]


@pytest.fixture(scope="module")
def timm():
    return pytest.importorskip("timm", reason="timm is optional; these checks need it installed")


def test_timm_by_name_in_yaml(timm) -> None:
    model = DetectionModel(stage_config("TimmBackbone", ["mobilenetv3_small_050"]), scale="n").eval()
    stage = model.model[0]
    reference = timm.create_model("mobilenetv3_small_050", features_only=True)
    assert [f.channels for f in stage.feature_info] == reference.feature_info.channels()
    assert [f.stride for f in stage.feature_info] == reference.feature_info.reduction()
    check_outputs(stage)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 4 + 3)


def test_timm_local_weights(tmp_path, timm) -> None:
    torch.manual_seed(1)
    full = randomize_batchnorm(timm.create_model("mobilenetv3_small_050")).eval()
    path = tmp_path / "full.pth"
    torch.save(full.state_dict(), path)
    stage = build_stage(TimmBackbone, 3, "mobilenetv3_small_050", str(path)).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = full.forward_intermediates(image, intermediates_only=True)
        assert relative_max_difference(expected, stage(image)) == 0
    # timm's features-only model as the checkpoint: the same tensors
    features = timm.create_model("mobilenetv3_small_050", features_only=True)
    torch.save(features.state_dict(), tmp_path / "features.pth")
    from_features = build_stage(TimmBackbone, 3, "mobilenetv3_small_050", str(tmp_path / "features.pth"))
    assert all(
        torch.equal(a, b) for a, b in zip(from_features.body.state_dict().values(), features.state_dict().values())
    )
    # timm's loader keeps what it cannot place at random init without a word; ours says the file does not fit
    torch.save({"head.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(
        BackboneWeightsError, match=r"other\.pth: no tensor matches TimmBackbone \(checkpoint names: head"
    ):
        build_stage(TimmBackbone, 3, "mobilenetv3_small_050", str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="download"):
        TimmBackbone(3, "mobilenetv3_small_050", True)
    with pytest.raises(ValueError, match="unknown timm model 'resnett18'.*resnet18"):
        TimmBackbone(3, "resnett18")


def test_torchvision_by_name_in_yaml_and_fuse() -> None:
    model = DetectionModel(stage_config("TorchvisionBackbone", ["mobilenet_v3_small"]), scale="n")
    stage = model.model[0]
    assert [(f.channels, f.stride) for f in stage.feature_info] == [(16, 2), (16, 4), (24, 8), (48, 16), (576, 32)]
    check_outputs(stage)
    randomize_batchnorm(model).eval()
    image = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        unfused = model(image)
        model.fuse()
        assert not has_batchnorm(model)
        assert relative_max_difference(unfused, model(image)) <= 1e-4


def test_torchvision_levels_and_fuse_through_the_graph(tmp_path) -> None:
    torch.manual_seed(2)
    classifier = randomize_batchnorm(torchvision.models.get_model("resnet18", weights=None)).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(classifier.state_dict(), path)
    stage = build_stage(TorchvisionBackbone, 3, "resnet18", path).eval()
    assert stage.return_nodes == ["relu", "layer1", "layer2", "layer3", "layer4"]
    gray = build_stage(TorchvisionBackbone, 1, "resnet18", path).state_dict()  # a 1-channel first conv keeps its init
    reference = classifier.state_dict()
    assert [k for k, v in gray.items() if not torch.equal(v, reference[k.removeprefix("body.")])] == [
        "body.conv1.weight"
    ]
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = classifier.layer4(
            classifier.layer3(
                classifier.layer2(
                    classifier.layer1(classifier.maxpool(classifier.relu(classifier.bn1(classifier.conv1(image)))))
                )
            )
        )
        unfused = stage(image)
        assert relative_max_difference(expected, unfused[-1]) == 0
        stage.reparameterize()  # conv1 -> bn1 is not inside a Sequential: folded in the traced graphs
        stage.reparameterize()
        assert not has_batchnorm(stage)
        assert relative_max_difference(unfused, stage(image)) <= 1e-4
        assert relative_max_difference(unfused, stage.train().eval()(image)) <= 1e-4  # both graphs were rewritten


def test_torchvision_errors() -> None:
    with pytest.raises(ValueError, match="not a torchvision classification model.*resnet18"):
        TorchvisionBackbone(3, "resnet19")
    with pytest.raises(ValueError, match="download"):
        TorchvisionBackbone(3, "mobilenet_v3_small", True)
    with pytest.raises(ConfigError, match="layer 0 .*TorchvisionBackbone"):
        DetectionModel(stage_config("TorchvisionBackbone", ["alexnett"]), scale="n")


def test_project_imports_and_reports_without_timm(monkeypatch) -> None:
    """With timm unimportable the project imports and builds models; a TimmBackbone says what is missing."""
    for name in [n for n in sys.modules if n == "timm" or n.startswith(("timm.", "models", "utils"))]:
        monkeypatch.delitem(sys.modules, name)  # re-import the project fresh; restored after the test
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    detection_model = importlib.import_module("models.detection_model")
    timm_backbone = importlib.import_module("models.backbones.timm_backbone")
    detection_model.DetectionModel("yolov5n_mobilenetv4.yaml")
    with pytest.raises(ImportError, match="TimmBackbone needs the optional package timm"):
        timm_backbone.TimmBackbone(3, "resnet18")
