"""--bn-calibration: BatchNorm statistics re-measured from the current weights, nothing else changed."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from engine.hooks.batchnorm_stats import recalibrate_batchnorm
from engine.trainer import train
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
    run = train(options(tiny_data, tmp_path, epochs=1, bn_calibration=4))
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    means = [v for k, v in ckpt["model"].items() if k.endswith("running_mean")]
    assert ckpt["train_args"]["bn_calibration"] == 4 and means and all(torch.isfinite(v).all() for v in means)
    assert 0 <= ckpt["metrics"]["map50"] <= 1
