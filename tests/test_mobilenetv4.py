"""MobileNetV4 stages: equal to timm's `mobilenetv4_*` with converted weights, foldable, width-scalable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.backbones.mobilenetv4 import (
    MobileNetV4,
    MobileNetV4ConvLarge,
    MobileNetV4ConvMedium,
    MobileNetV4ConvSmall,
    MobileNetV4HybridLarge,
    MobileNetV4HybridMedium,
)
from models.backbones.mobilenetv4.layers import LayerScale, round_channels
from models.detection_model import DetectionModel
from models.reparam import has_batchnorm, randomize_batchnorm, reparameterize_model
from tests.helpers import build_stage
from utils.compare import relative_max_difference

# timm name -> (our class, width). The _050/_075 entries are timm's own width-scaled variants.
VARIANTS = {
    "mobilenetv4_conv_small": (MobileNetV4ConvSmall, 1.0),
    "mobilenetv4_conv_medium": (MobileNetV4ConvMedium, 1.0),
    "mobilenetv4_conv_large": (MobileNetV4ConvLarge, 1.0),
    "mobilenetv4_hybrid_medium": (MobileNetV4HybridMedium, 1.0),
    "mobilenetv4_hybrid_large": (MobileNetV4HybridLarge, 1.0),
    "mobilenetv4_conv_small_050": (MobileNetV4ConvSmall, 0.5),
    "mobilenetv4_hybrid_medium_075": (MobileNetV4HybridMedium, 0.75),
}
ALL_CLASSES = [
    MobileNetV4ConvSmall,
    MobileNetV4ConvMedium,
    MobileNetV4ConvLarge,
    MobileNetV4HybridMedium,
    MobileNetV4HybridLarge,
]


@torch.no_grad()
def randomize_scales(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial BatchNorm statistics and layer-scale gammas (fresh ones are ~identities / 1e-5)."""
    randomize_batchnorm(model, seed)
    generator = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("gamma"):  # timm's LayerScale2d and ours
            p.copy_(torch.rand(p.shape, generator=generator) * 0.5 + 0.5)
    return model


@pytest.fixture(scope="module")
def timm_features():
    """Each timm reference built once (features_only, random weights, randomized statistics), in eval mode."""
    timm = pytest.importorskip("timm", reason="timm (a test-only dependency) is needed as the numerical reference")
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = randomize_scales(timm.create_model(name, pretrained=False, features_only=True)).eval()
        return cache[name]

    return get


@pytest.mark.parametrize("timm_name", list(VARIANTS))
def test_equal_to_timm(timm_name: str, timm_features) -> None:
    reference = timm_features(timm_name)
    cls, width = VARIANTS[timm_name]
    ours = cls(3, width).eval()
    assert [f.channels for f in ours.feature_info] == reference.feature_info.channels()
    assert [f.stride for f in ours.feature_info] == reference.feature_info.reduction()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())

    ours.load_state_dict(ours.convert_state_dict(reference.state_dict()), strict=True)
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, got = reference(image), ours(image)
    assert len(got) == len(expected) == 5
    for level, (e, g) in enumerate(zip(expected, got)):
        assert g.shape == e.shape, f"P{level + 1}"
        assert (g - e).abs().max() <= 1e-4 * e.abs().max(), f"P{level + 1} differs from timm"


def test_converter_takes_full_classifier_checkpoints(timm_features) -> None:
    import timm  # optional: the timm_features fixture this test takes skips without it

    torch.manual_seed(3)
    full = randomize_scales(timm.create_model("mobilenetv4_hybrid_medium", pretrained=False), seed=3).eval()
    reference = timm_features("mobilenetv4_hybrid_medium")
    saved = {k: v.clone() for k, v in reference.state_dict().items()}
    try:
        reference.load_state_dict({k: v for k, v in full.state_dict().items() if k in saved}, strict=True)
        ours = MobileNetV4HybridMedium(3).eval()
        converted = ours.convert_state_dict(full.state_dict())  # conv_head / norm_head / classifier dropped
        assert not any(k.startswith(("conv_head", "norm_head", "classifier")) for k in converted)
        ours.load_state_dict(converted, strict=True)
        image = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            assert relative_max_difference(reference(image), ours(image)) <= 1e-4
    finally:
        reference.load_state_dict(saved)


def test_converter_refuses_other_variants_and_widths(timm_features) -> None:
    small = timm_features("mobilenetv4_conv_small").state_dict()
    with pytest.raises(ValueError, match="do not belong to this variant|lacks"):
        MobileNetV4ConvMedium(3).convert_state_dict(small)
    with pytest.raises(ValueError, match="shape .* width"):
        MobileNetV4ConvSmall(3, 0.75).convert_state_dict(small)
    fused = MobileNetV4ConvSmall(3)
    reparameterize_model(fused)
    with pytest.raises(ValueError, match="unfused"):
        fused.convert_state_dict(small)


def test_weights_argument(tmp_path, timm_features) -> None:
    reference = timm_features("mobilenetv4_conv_small")
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image)

    timm_file = tmp_path / "timm.pt"
    torch.save({"state_dict": reference.state_dict()}, timm_file)
    from_timm = build_stage(MobileNetV4ConvSmall, 3, 1.0, str(timm_file)).eval()
    ours_file = tmp_path / "ours.pt"
    torch.save(from_timm.state_dict(), ours_file)
    from_ours = build_stage(MobileNetV4ConvSmall, 3, 1.0, ours_file).eval()
    with torch.no_grad():
        assert relative_max_difference(expected, from_timm(image)) <= 1e-4
        assert relative_max_difference(expected, from_ours(image)) == 0

    with pytest.raises(ValueError, match="download"):
        MobileNetV4ConvSmall(3, 1.0, True)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        MobileNetV4ConvSmall(3, 1.0, tmp_path / "missing.pt")


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_fuse_keeps_outputs(cls: type[MobileNetV4]) -> None:
    width = 0.75 if cls in (MobileNetV4ConvSmall, MobileNetV4HybridMedium) else 0.25  # same blocks, less time
    model = randomize_scales(cls(3, width)).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        unfused = model(image)
        reparameterize_model(model)
        fused = model(image)
        assert not has_batchnorm(model)
        assert not any(isinstance(m, LayerScale) for m in model.modules())
        assert relative_max_difference(unfused, fused) <= 1e-4
        state = {k: v.clone() for k, v in model.state_dict().items()}
        reparameterize_model(model)  # idempotent
        assert (
            all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
            and state.keys() == model.state_dict().keys()
        )
        deployed = reparameterize_model(cls(3, width)).eval()  # built directly in fused form, then loaded
        deployed.load_state_dict(state, strict=True)
        assert relative_max_difference(fused, deployed(image)) == 0


@pytest.mark.parametrize(
    "cls, width",
    [
        (MobileNetV4HybridMedium, 0.25),
        (MobileNetV4ConvSmall, 0.5),
        (MobileNetV4HybridMedium, 0.75),
        (MobileNetV4ConvSmall, 1.25),
        (MobileNetV4HybridMedium, 1.5),
    ],
)
def test_width_factors(cls: type[MobileNetV4], width: float) -> None:
    model = cls(3, width).eval()
    reference = {MobileNetV4HybridMedium: (32, 48, 80, 160, 960), MobileNetV4ConvSmall: (32, 32, 64, 96, 960)}[cls]
    channels = [f.channels for f in model.feature_info]
    assert all(c % 8 == 0 for c in channels)
    assert channels[1:] == [round_channels(c * width) for c in reference[1:]]
    assert channels[0] == (reference[0] if width < 1 else round_channels(reference[0] * width))  # stem not thinned
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outputs] == [(c, 64 // s, 96 // s) for c, s in zip(channels, (2, 4, 8, 16, 32))]


@pytest.mark.parametrize("width", [0, -0.5, 0.01, 0.2, 1.6, float("nan"), "wide", True])
def test_bad_width_names_the_argument(width: object) -> None:
    with pytest.raises(ValueError, match=r"MobileNetV4ConvSmall: width"):
        MobileNetV4ConvSmall(3, width)


def test_round_channels() -> None:
    assert [round_channels(v) for v in (4, 10, 12, 20, 24, 720, 1440)] == [8, 16, 16, 24, 24, 720, 1440]


def test_other_input_channels() -> None:
    model = MobileNetV4ConvSmall(1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64))[-1].shape == (1, 960, 2, 2)


@pytest.mark.parametrize("cfg", ["yolo11n_mobilenetv4.yaml", "yolov5n_mobilenetv4.yaml"])
def test_configs_fill_slots_and_forward(cfg: str) -> None:
    model = DetectionModel(cfg).eval()
    backbone = model.records[0]
    assert backbone.label == "0-4" and backbone.slots == [0, 1, 2, 3, 4]
    assert model.records[1].first_slot == 5 and model.records[1].name == "SPPF"
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        out = model(torch.rand(1, 3, 96, 128))
    per_cell = 3 if model.head.has_objectness else 1  # anchors per cell for YOLOv5, one point for YOLO11
    fields = 4 + (1 if model.head.has_objectness else 0) + 80
    assert out.shape == (1, (12 * 16 + 6 * 8 + 3 * 4) * per_cell, fields)
