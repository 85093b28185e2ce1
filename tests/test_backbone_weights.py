"""Loading backbone checkpoints: the per-group report, wrappers, YAML and --backbone-weights paths, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.backbones.mobileone import MobileOneS0
from models.backbones.weights import BackboneWeightsError, load_backbone_weights, load_stage_weights
from models.config import ConfigError
from models.detection_model import DetectionModel


def same_tensors(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = module.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], v) for k, v in state.items())


def small_config(backbone_args: list) -> dict:
    """YOLO11-style detector on a narrow MobileOne-S0 (width 0.25) to keep the tests light."""
    return {
        "nc": 3,
        "scales": {"n": [0.5, 0.25, 1024]},
        "backbone": [[-1, 1, "MobileOneS0", backbone_args], [-1, 1, "SPPF", [256, 5]]],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 3], 1, "Concat", [1]],
            [-1, 1, "C3k2", [128, False]],
            [[-1, 5], 1, "Detect", ["nc"]],
        ],
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A width-0.25 MobileOne-S0 state dict saved in a {'model': ...} wrapper, as training scripts save them."""
    torch.manual_seed(1)
    state = MobileOneS0(3, 0.25).state_dict()
    path = tmp_path_factory.mktemp("weights") / "mobileone_s0_w025.pt"
    torch.save({"model": state, "epoch": 3}, path)
    return path, state


def test_report_per_group(checkpoint: tuple[Path, dict], capsys: pytest.CaptureFixture) -> None:
    path, state = checkpoint
    stage = MobileOneS0(3, 0.25)
    counts = load_stage_weights(stage, path)
    assert list(counts) == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    assert sum(counts.values()) == len(state)
    assert counts["stem"] == sum(k.startswith("stem.") for k in state)
    assert same_tensors(stage, state)
    assert f"loaded {len(state)}/{len(state)} tensors from {path}" in capsys.readouterr().out
    assert load_stage_weights(MobileOneS0(3, 0.25), {"state_dict": state}) == counts  # raw wrapper too


def test_nothing_matching_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"backbone.conv.weight": torch.zeros(3)}, path)
    with pytest.raises(BackboneWeightsError, match=f"{path}: no tensor matches MobileOneS0"):
        load_stage_weights(MobileOneS0(3, 0.25), path)


def test_shape_mismatch_is_an_error(checkpoint: tuple[Path, dict]) -> None:
    path, _ = checkpoint
    with pytest.raises(BackboneWeightsError, match=f"{path}: .*shapes do not fit MobileOneS0"):
        load_stage_weights(MobileOneS0(3, 0.5), path)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="nothing.pt"):
        load_stage_weights(MobileOneS0(3, 0.25), tmp_path / "nothing.pt")


def test_yaml_weights_argument(checkpoint: tuple[Path, dict]) -> None:
    path, state = checkpoint
    model = DetectionModel(small_config([0.25, str(path)]))
    assert same_tensors(model.model[0], state)
    with pytest.raises(ConfigError, match=r"layer 0 .*download.*local path"):
        DetectionModel(small_config([0.25, True]))
    with pytest.raises(ConfigError, match=r"layer 0 .*missing\.pt' does not exist"):
        DetectionModel(small_config([0.25, "missing.pt"]))


def test_load_backbone_weights_finds_the_stage(checkpoint: tuple[Path, dict]) -> None:
    path, state = checkpoint
    model = DetectionModel(small_config([0.25]))
    assert sum(load_backbone_weights(model, path).values()) == len(state)
    assert same_tensors(model.model[0], state)
    with pytest.raises(BackboneWeightsError, match="no backbone stage"):
        load_backbone_weights(DetectionModel("yolov5n.yaml"), path)


def test_safetensors_checkpoint(checkpoint: tuple[Path, dict], tmp_path: Path) -> None:
    """timm's hub checkpoints are model.safetensors files."""
    safetensors_torch = pytest.importorskip("safetensors.torch", reason="optional reader of .safetensors files")
    _, state = checkpoint
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    stage = MobileOneS0(3, 0.25)
    assert sum(load_stage_weights(stage, path).values()) == len(state)
    assert same_tensors(stage, state)


def test_fused_stage_refuses_training_form_weights(checkpoint: tuple[Path, dict]) -> None:
    path, _ = checkpoint
    with pytest.raises(BackboneWeightsError, match=f"{path}: training-form .* before fusing"):
        load_stage_weights(MobileOneS0(3, 0.25, None, True), path)
