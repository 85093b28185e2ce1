"""--bn-calibration: BatchNorm statistics re-measured from the current weights, nothing else changed."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from benchmarks.batchnorm_staleness import remeasure
from engine.hooks.batchnorm_stats import recalibrate_batchnorm, stem_batchnorms
from engine.trainer import train
from models.detection_model import DetectionModel
from tests.test_train import options
from utils.checkpoint import load_checkpoint


def test_recalibration_measures_the_current_weights_and_leaves_the_rest() -> None:
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.03)
    model = nn.Sequential(conv, norm, nn.Dropout(0.5), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2)).eval()
    norm.running_mean.fill_(5.0)  # stale: measured under other weights
    norm.running_var.fill_(100.0)
    batches = [torch.rand(2, 3, 8, 8) * 3 + 1 for _ in range(3)]
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(model, batches) == 2
    with torch.no_grad():
        features = conv(torch.cat(batches))
    torch.testing.assert_close(norm.running_mean, features.mean((0, 2, 3)))  # equal batches: mean of means
    batch_vars = torch.stack([conv(b).var((0, 2, 3), unbiased=True) for b in batches]).detach()
    torch.testing.assert_close(norm.running_var, batch_vars.mean(0))
    assert torch.equal(torch.get_rng_state(), rng)  # dropout stayed off: runs and resumes stay exact
    assert not model.training and norm.momentum == 0.03
    assert recalibrate_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1)), batches) == 0


def test_a_run_with_calibration_saves_the_re_measured_statistics(tiny_data: Path, tmp_path: Path) -> None:
    run = train(options(tiny_data, tmp_path, epochs=1, bn_calibration=4, bn_calibration_scope="all"))
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    means = [v for k, v in ckpt["model"].items() if k.endswith("running_mean")]
    assert ckpt["train_args"]["bn_calibration"] == 4 and means and all(torch.isfinite(v).all() for v in means)
    assert 0 <= ckpt["metrics"]["map50"] <= 1


def test_the_stem_is_the_batchnorms_before_the_first_activation() -> None:
    first, second = nn.BatchNorm2d(4), nn.BatchNorm2d(2)
    # registered in the other order than they run: the stem is found by running the model, not by listing it
    model = nn.Module()
    model.late, model.act, model.early = second, nn.ReLU(), first
    model.forward = lambda x: second(
        nn.functional.conv2d(model.act(first(nn.functional.conv2d(x, torch.ones(4, 3, 1, 1)))), torch.ones(2, 4, 1, 1))
    )
    assert stem_batchnorms(model) == [first] and model.training
    branch, scale = nn.BatchNorm2d(4), nn.BatchNorm2d(4)  # two parallel branches on the pixels, summed, then ReLU
    convs = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
    block = nn.Module()
    block.branch, block.scale, block.act, block.after = branch, scale, nn.ReLU(), nn.BatchNorm2d(4)
    block.forward = lambda x: block.after(block.act(branch(convs[0](x)) + scale(convs[1](x))))
    assert stem_batchnorms(block) == [branch, scale]
    no_module_activation = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    assert stem_batchnorms(no_module_activation) == [no_module_activation[1]]  # the first alone
    detector = DetectionModel("yolov5n.yaml", nc=1)
    assert stem_batchnorms(detector) == [detector.model[0].bn]
    assert stem_batchnorms(nn.Sequential(nn.Conv2d(3, 4, 1))) == []


def test_re_measuring_the_stem_leaves_every_other_layer_unrun_and_unchanged() -> None:
    torch.manual_seed(0)
    stem, later = nn.BatchNorm2d(4), nn.BatchNorm2d(2)
    tail = nn.Conv2d(4, 2, 1)
    calls = []
    tail.register_forward_hook(lambda *args: calls.append(1))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), stem, tail, later).eval()
    later.running_mean.fill_(5.0)
    batches = [torch.rand(2, 3, 8, 8) for _ in range(3)]
    assert recalibrate_batchnorm(model, batches, only=[stem]) == 1
    with torch.no_grad():
        features = model[0](torch.cat(batches))
    torch.testing.assert_close(stem.running_mean, features.mean((0, 2, 3)))
    assert not calls  # each forward pass stopped after the stem
    assert torch.all(later.running_mean == 5.0) and stem.momentum == 0.1 and not model.training
    assert not stem._forward_hooks  # the stopping hooks are removed


def test_stem_calibration_changes_only_the_stem_statistics_of_a_run(tiny_data: Path, tmp_path: Path) -> None:
    plain = load_checkpoint(
        train(options(tiny_data, tmp_path / "plain", epochs=1, bn_calibration=0)) / "weights" / "last.pt"
    )
    stem = load_checkpoint(train(options(tiny_data, tmp_path / "stem", epochs=1)) / "weights" / "last.pt")
    assert stem["train_args"]["bn_calibration"] > 0 and stem["train_args"]["bn_calibration_scope"] == "stem"
    changed = {k for k, v in plain["model"].items() if not torch.equal(v, stem["model"][k])}
    assert changed == {"model.0.bn.running_mean", "model.0.bn.running_var"}


def test_the_staleness_benchmark_s_stem_group_is_its_first_layer_group() -> None:
    """benchmarks/batchnorm_staleness.py measured `layer:0`; the default re-measures the stem: the same statistics."""
    torch.manual_seed(0)
    batches = [torch.rand(2, 3, 64, 64) for _ in range(2)]
    models = {group: DetectionModel("yolov5s_mobileone.yaml", nc=1).eval() for group in ("stem", "layer:0")}
    models["layer:0"].load_state_dict(models["stem"].state_dict())
    for group, model in models.items():
        remeasure(model, group, batches)
    for (name, a), b in zip(models["stem"].state_dict().items(), models["layer:0"].state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert not torch.equal(models["stem"].model[0].conv.bn.running_var, torch.ones(32))
