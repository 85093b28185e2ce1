"""Worker of tests/test_train_every_config.py: trains configs for one optimiser step each, in this process.

    python -m tests.one_step_training DATA_YAML PROJECT_DIR '[["cfg/yolo11/yolo11.yaml", "n"], ...]'

Runs the real training entry point with the default TrainOptions (channels-last on) except data, size, epochs and
batch. Reports on stdout, one `@@one-step {json}` line before (`start`) and after (`trained` or `error`) each
config, so that when a crash kills the process the parent knows which config it was training.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import torch

from engine.hooks.batchnorm_stats import BatchNormStatsHook, stem_batchnorms
from engine.train_options import TrainOptions
from engine.trainer import Trainer

REPORT_PREFIX = "@@one-step "


def report(event: str, case: str, **details: object) -> None:
    print(REPORT_PREFIX + json.dumps({"event": event, "case": case, **details}), flush=True)


def case_name(cfg: str, scale: str | None) -> str:
    return Path(cfg).stem + (f"-{scale}" if scale else "")


class _StopAfterFirstStep(Exception):
    pass


def _stop(trainer: Trainer) -> None:
    raise _StopAfterFirstStep


def train_one_step(cfg: str, scale: str | None, data: str, project: str) -> Trainer:
    """Set up and train until the first optimiser step (2 images at 64 px, the batch of an epoch); returns the trainer.

    Stops there, before validation and checkpoints, which the other training tests cover and which would take most
    of the time here.
    """
    options = TrainOptions(
        cfg=cfg,
        scale=scale,
        data=data,
        imgsz=64,
        epochs=1,
        batch_size=2,
        project=project,
        name=case_name(cfg, scale),
        noplots=True,
    )
    trainer = Trainer(options, callbacks={"after_optimizer_step": [_stop]})
    try:
        trainer.train()
    except _StopAfterFirstStep:
        pass
    else:
        raise AssertionError(f"{cfg}: training ended without an optimiser step")
    return trainer


def calibrate_stem(trainer: Trainer) -> dict[str, object]:
    """Run the default --bn-calibration on the EMA model as the hook does before each validation; report which
    BatchNorms it found as the stem, over how many batches it measured it, and whether the result is finite."""
    BatchNormStatsHook().after_epoch(trainer)
    model = trainer.ema.ema
    stem = stem_batchnorms(model)
    return {
        "stem": [name for name, m in model.named_modules() if any(m is n for n in stem)],
        "stem_batches": [int(m.num_batches_tracked) for m in stem],
        "stem_finite": all(
            bool(torch.isfinite(m.running_mean).all() and torch.isfinite(m.running_var).all()) for m in stem
        ),
    }


def main(argv: list[str]) -> int:
    data, project, cases = argv[0], argv[1], json.loads(argv[2])
    for cfg, scale in cases:
        name = case_name(cfg, scale)
        report("start", name)
        try:
            trainer = train_one_step(cfg, scale, data, project)
            calibration = calibrate_stem(trainer)
        except Exception:  # reported per config, so one config's error does not hide the others' results
            report("error", name, traceback=traceback.format_exc())
            continue
        report(
            "trained",
            name,
            optimiser_steps=trainer.ema.updates,
            channels_last=trainer.options.channels_last,
            nchw_convs=trainer.nchw_convs,
            **calibration,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
