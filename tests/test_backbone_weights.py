"""Loading backbone checkpoints: the per-group report, wrappers, YAML and --backbone-weights paths, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torchvision.models.feature_extraction import create_feature_extractor

from engine.train_options import TrainOptions
from engine.trainer import Trainer
from models.backbones import weights as weights_module
from models.backbones.mobileone import MobileOneS0
from models.backbones.weights import BackboneWeightsError, load_backbone_weights, load_stage_weights, read_state_dict
from models.config import ConfigError
from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from utils.compare import relative_max_difference


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


# -- one loading path for every kind of backbone: the YAML argument and --backbone-weights agree ------------
Levels = Callable[[torch.nn.Module, torch.Tensor], list[torch.Tensor]]  # (our stage, image) -> reference maps


def _own_reference(width: float) -> tuple[torch.nn.Module, Levels]:
    model = randomize_batchnorm(MobileOneS0(3, width)).eval()
    return model, lambda _stage, image: model(image)


def _timm_reference(name: str) -> tuple[torch.nn.Module, Levels]:
    timm = pytest.importorskip("timm", reason="timm is the reference implementation (a test dependency)")
    model = randomize_batchnorm(timm.create_model(name)).eval()
    return model, lambda _stage, image: model.forward_intermediates(image, intermediates_only=True)


def _torchvision_reference(name: str) -> tuple[torch.nn.Module, Levels]:
    model = randomize_batchnorm(torchvision.models.get_model(name, weights=None)).eval()

    def levels(stage: torch.nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
        return list(create_feature_extractor(model, return_nodes=stage.return_nodes).eval()(image).values())

    return model, levels


BACKBONE_KINDS = {  # YAML module, its args before `weights`, the reference classifier the checkpoint comes from
    "ours": ("MobileOneS0", [0.25], lambda: _own_reference(0.25)),
    "timm": ("TimmBackbone", ["mobilenetv3_small_050"], lambda: _timm_reference("mobilenetv3_small_050")),
    "torchvision": (
        "TorchvisionBackbone",
        ["mobilenet_v3_small"],
        lambda: _torchvision_reference("mobilenet_v3_small"),
    ),
}


def detector_config(module: str, args: list) -> dict:
    """A small YOLO11-style detector on a five-level backbone stage (P3, P4 = slots 2, 3; P5 flows on)."""
    return {
        "nc": 2,
        "scales": {"n": [0.5, 0.25, 1024]},
        "backbone": [[-1, 1, module, args], [-1, 1, "SPPF", [256, 5]]],
        "head": [
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 3], 1, "Concat", [1]],
            [-1, 1, "C3k2", [128, False]],  # 8
            [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
            [[-1, 2], 1, "Concat", [1]],
            [-1, 1, "C3k2", [64, False]],  # 11
            [[11, 8, 5], 1, "Detect", ["nc"]],
        ],
    }


@pytest.mark.parametrize("kind", list(BACKBONE_KINDS))
def test_yaml_weights_and_backbone_weights_option_load_the_same(
    kind: str, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference classifier's checkpoint loads the same through the YAML `weights` argument and through
    train.py's --backbone-weights, and the stage then reproduces the reference's feature maps. The YAML
    argument is loaded once, by the stage's build rule: the constructor only records the file."""
    module, args, make_reference = BACKBONE_KINDS[kind]
    torch.manual_seed(3)
    reference, reference_levels = make_reference()
    path = tmp_path / f"{kind}.pth"
    torch.save(reference.state_dict(), path)

    reads = []  # every checkpoint load, whoever starts it, reads the file through read_state_dict

    def counted_read(source: object) -> tuple[dict, str]:
        reads.append(source)
        return read_state_dict(source)

    monkeypatch.setattr(weights_module, "read_state_dict", counted_read)
    from_yaml = DetectionModel(detector_config(module, [*args, str(path)])).model[0]
    assert reads == [Path(path)] and from_yaml.weights_file == Path(path)
    monkeypatch.undo()
    cfg = tmp_path / f"{kind}.yaml"
    cfg.write_text(yaml.safe_dump(detector_config(module, args)))
    trainer = Trainer(
        TrainOptions(
            cfg=str(cfg),
            data=str(tiny_data),
            backbone_weights=str(path),
            imgsz=64,
            batch_size=2,
            workers=0,
            device="cpu",
            project=str(tmp_path / "runs"),
            noplots=True,
        )
    )
    trainer.setup()
    from_option = trainer.model.model[0]
    a, b = from_yaml.state_dict(), from_option.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"

    image = torch.rand(1, 3, 64, 64)  # the same tensors give the same maps: one comparison covers both routes
    with torch.no_grad():
        assert relative_max_difference(reference_levels(from_yaml, image), from_yaml.eval()(image)) <= 1e-5
