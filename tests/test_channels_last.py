"""The channels-last workaround: which convolutions it keeps in NCHW, that their training step then survives and
gets the right gradients, and that outputs and weights are the same in either layout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from utils.channels_last import as_nchw, hits_channels_last_backward_bug, to_channels_last
from utils.compare import relative_max_difference

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

# (in, out, kernel, stride, padding, groups) probed in subprocesses on torch 2.14.1 (tools/probe_channels_last_bug.py)
CRASHING = [
    (3, 48, 1, 2, 0, 1),
    (1, 48, 1, 2, 0, 1),
    (7, 16, 1, 2, 0, 1),
    (3, 48, 1, (1, 2), 0, 1),
    (3, 48, 1, 4, 0, 1),
]
SURVIVING = [
    (8, 48, 1, 2, 0, 1),  # 8 input channels
    (3, 48, 1, 1, 0, 1),  # stride 1
    (3, 48, 3, 2, 1, 1),  # 3x3 (MobileOne's and YOLO's stems)
    (3, 48, 1, 2, 1, 1),  # padded
    (6, 48, 1, 2, 0, 2),  # grouped
    (3, 40, 4, 4, 0, 1),  # InceptionNeXt's 4x4 patchify stem
    (3, 48, (1, 3), 2, 0, 1),
]


@pytest.mark.parametrize("shape", CRASHING)
def test_rule_marks_the_crashing_shapes(shape: tuple) -> None:
    assert hits_channels_last_backward_bug(nn.Conv2d(*shape[:5], groups=shape[5]))


@pytest.mark.parametrize("shape", SURVIVING)
def test_rule_leaves_the_other_shapes(shape: tuple) -> None:
    assert not hits_channels_last_backward_bug(nn.Conv2d(*shape[:5], groups=shape[5]))


def test_as_nchw_fixes_strides_that_contiguous_keeps() -> None:
    weight = nn.Conv2d(3, 48, 1).to(memory_format=torch.channels_last).weight.data
    assert weight.stride() == (3, 1, 3, 3) and weight.contiguous().stride() == (3, 1, 3, 3)  # why as_nchw exists
    assert as_nchw(weight).stride() == (3, 1, 1, 1) and torch.equal(as_nchw(weight), weight)
    image = torch.rand(2, 3, 8, 8)
    assert as_nchw(image) is image


def test_mobileone_stem_branch_is_the_only_conv_kept_in_nchw() -> None:
    model = DetectionModel("yolo11n_mobileone.yaml", nc=2)
    kept = to_channels_last(model, CPU)
    assert kept == ["model.0.stem.scale_branch.conv"]
    convs = dict((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    stem = convs[kept[0]]
    assert (stem.in_channels, stem.kernel_size, stem.stride) == (3, (1, 1), (2, 2))
    assert stem.weight.stride() == (3, 1, 1, 1)
    others = [m.weight for n, m in convs.items() if n != kept[0] and m.weight.shape[-2:] != (1, 1)]
    assert others and all(w.is_contiguous(memory_format=torch.channels_last) for w in others)
    assert to_channels_last(model, CPU) == kept and len(stem._forward_pre_hooks) == 1  # converting twice: one hook


def test_no_conv_kept_where_the_bug_does_not_apply() -> None:
    model = DetectionModel("yolo11n_mobileone.yaml", nc=2)
    assert to_channels_last(model, torch.device("cuda")) == []  # only the layout; the model stays where it is
    assert model.model[0].stem.scale_branch.conv.weight.stride() == (3, 1, 3, 3)


def test_layout_changes_neither_outputs_nor_weights() -> None:
    # random BatchNorm statistics (as test_fuse): with the initial ones, untrained MobileOne's eval activations
    # underflow to denormal floats and the forward takes 10x longer
    model = randomize_batchnorm(DetectionModel("yolo11n_mobileone.yaml", nc=2)).eval()
    image = torch.rand(1, 3, 32, 32)
    parameters = {k: v.clone() for k, v in model.named_parameters()}
    keys = model.state_dict().keys()
    with torch.no_grad():
        before = model(image)
        to_channels_last(model, CPU)
        after = model(image.contiguous(memory_format=torch.channels_last))
    assert relative_max_difference(before, after) <= 1e-5
    assert model.state_dict().keys() == keys
    assert all(torch.equal(v, parameters[k]) for k, v in model.named_parameters())


def test_kept_conv_gives_the_same_inference() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 48, 1, stride=2), nn.BatchNorm2d(48), nn.ReLU(), nn.Conv2d(48, 16, 3)).eval()
    image = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        before = model(image)
        assert to_channels_last(model, CPU) == ["0"]
        assert torch.allclose(before, model(image.contiguous(memory_format=torch.channels_last)), atol=1e-6)


# Run in a subprocess: without the workaround this segfaults, aborts or hangs (heap corruption).
_TRAIN_STEP = textwrap.dedent(
    """
    import torch, torch.nn as nn
    from utils.channels_last import to_channels_last

    def step(layout):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(CIN, 48, 1, stride=2), nn.ReLU(), nn.Conv2d(48, 16, 3, padding=1))
        x = torch.rand(4, CIN, 64, 64)
        if layout == "channels_last":
            assert to_channels_last(model, torch.device("cpu")) == ["0"]
            x = x.contiguous(memory_format=torch.channels_last)
        model(x).square().sum().backward()
        return [p.grad for p in model.parameters()]

    for CIN in (3, 1):
        reference = step("nchw")
        for _ in range(3):
            assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(reference, step("channels_last")))
    print("same gradients")
    """
)


def test_kept_conv_trains_with_the_right_gradients_in_a_subprocess() -> None:
    done = subprocess.run([sys.executable, "-c", _TRAIN_STEP], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "same gradients" in done.stdout, (done.returncode, done.stderr[-2000:])
