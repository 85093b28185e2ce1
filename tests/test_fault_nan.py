"""NaN injected into the loss and the weights: a non-finite loss skips its batch with a warning naming the epoch
and iteration, --max-nan-steps of them in a row stop training with one clear line, and checkpoints never hold a
non-finite value."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml

import train
from engine.hooks import NonFiniteLossError
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from tests.fault_helpers import all_finite, make_fault_data, train_argv
from tests.helpers import ANCHOR_HYP, STILL_HYP
from utils.checkpoint import load_checkpoint
from utils.errors import UserError


class NaNLoss:
    """The trainer's loss, returning NaN at the iterations in `bad`."""

    def __init__(self, loss_fn, trainer: Trainer, bad: set[int]) -> None:
        self.loss_fn, self.trainer, self.bad = loss_fn, trainer, bad

    def __call__(self, preds, targets):
        loss, items = self.loss_fn(preds, targets)
        if self.trainer.iteration in self.bad:
            return loss * math.nan, items * math.nan
        return loss, items

    def __getattr__(self, name: str):
        return getattr(self.loss_fn, name)


class NaNLossTrainer(Trainer):
    bad_iterations: set[int] = set()

    def build_loss(self, model):
        return NaNLoss(super().build_loss(model), self, self.bad_iterations)


def fault_options(tmp_path: Path, name: str, epochs: int, **overrides) -> TrainOptions:
    data, hyp = make_fault_data(tmp_path)
    base = dict(cfg="yolov5n.yaml", data=str(data), hyp=str(hyp), imgsz=64, epochs=epochs, batch_size=2, nbs=2)
    base |= dict(workers=0, device="cpu", optimizer="AdamW", cache="ram", noplots=True, project=str(tmp_path))
    return TrainOptions(**{**base, "name": name, **overrides})


def test_a_nan_loss_skips_its_batch_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trainer = NaNLossTrainer(fault_options(tmp_path, "skip", epochs=2))
    trainer.bad_iterations = {1}  # the second (last) batch of epoch 1: 2 images of 4 per batch
    run = trainer.train()
    out = capsys.readouterr().out
    assert "WARNING: epoch 1/2, batch 2/2 (iteration 1): loss nan; batch skipped" in out
    assert out.count("batch skipped") == 1
    assert trainer.ema.updates == 3  # 4 batches, one without an optimiser step
    rows = [r.split(",") for r in (run / "results.csv").read_text().split()]
    train_losses = [float(v) for r in rows[1:] for v, name in zip(r, rows[0]) if name.startswith("train/")]
    assert train_losses and all(math.isfinite(v) for v in train_losses)  # the skipped batch is not in the mean
    for name in ("last.pt", "best.pt"):
        assert all_finite(load_checkpoint(run / "weights" / name))


def test_non_finite_weights_are_never_saved_and_nan_in_a_row_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def poison(trainer: Trainer) -> None:  # the model (not yet its EMA) goes NaN at the end of epoch 2
        if trainer.iteration == 3:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(math.nan)

    trainer = Trainer(
        fault_options(tmp_path, "poisoned", epochs=3, max_nan_steps=2), callbacks={"after_optimizer_step": [poison]}
    )
    with pytest.raises(NonFiniteLossError) as error:
        trainer.train()
    assert isinstance(error.value, UserError)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("training stopped at epoch 3/3, batch 2/2 (iteration 5): the loss was NaN or infinite")
    out = capsys.readouterr().out
    assert "WARNING: epoch 2: NaN or infinite values in 1 weight tensor(s), e.g. model.0.conv.weight; not saving" in out
    assert "WARNING: epoch 3/3, batch 1/2 (iteration 4): loss nan; batch skipped" in out
    weights = tmp_path / "poisoned" / "weights"
    last, best = load_checkpoint(weights / "last.pt"), load_checkpoint(weights / "best.pt")
    assert last["epoch"] == 0 and all_finite(last) and all_finite(best)
    assert best["epoch"] == last["best_epoch"]


def test_a_diverging_run_exits_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The issue's reproduction: lr0 1e6 made every loss NaN, and the run exited 0 with NaN weights saved. It used
    YOLOv5's loss, then the anchor head's default; the task-aligned default stays finite at lr0 1e6 here."""
    data, _ = make_fault_data(tmp_path)
    hyp = tmp_path / "huge_lr.yaml"
    hyp.write_text(yaml.safe_dump({**STILL_HYP, **ANCHOR_HYP, "lr0": 1e6}))
    argv = train_argv(data, hyp, tmp_path, "diverging", 5, "--max-nan-steps", "3", "--loss", "AnchorLoss")
    assert train.main(argv) == 2
    err = capsys.readouterr().err  # progress bars go to stderr too
    errors = re.findall(r"error: .*", err)  # a progress bar may end the line before it without a newline
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].startswith("error: training stopped at epoch ")
    assert "NaN or infinite in 3 batches in a row (--max-nan-steps 3" in errors[0]
    for path in (tmp_path / "diverging" / "weights").glob("*.pt"):
        assert all_finite(load_checkpoint(path)), path
