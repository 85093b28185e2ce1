"""One config's training in a sweep: a new run, a resumed one (its last.pt), or a finished one skipped; the metrics
of its best.pt recorded beside it, so a rerun of the sweep reads them instead of training again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.sweep.configs import run_name
from benchmarks.sweep.options import SweepOptions
from engine.train_options import TrainOptions
from engine.train_setup import load_named_checkpoint
from engine.trainer import Trainer
from engine.val_options import ValOptions
from engine.val_run import run_val
from utils.atomic_write import atomic_write
from utils.errors import UserError

RECORD = "sweep_result.json"  # written after the run's wrap-up: its presence means "finished, metrics known"
METRICS = ("map50", "map50_95")


class SweepRunError(UserError, ValueError):
    """A config's run directory holds a run this sweep cannot continue (another config trained there)."""


@dataclass
class ConfigResult:
    """What the sweep knows of one config after its training stage."""

    config: str
    run_dir: Path
    status: str  # "done" or "failed"
    metrics: dict[str, float] = field(default_factory=dict)  # best.pt validated: map50, map50_95
    reason: str = ""  # why it failed (one line)
    how: str = ""  # trained, resumed, skipped (finished before), validated (trained before, not recorded)

    @property
    def best(self) -> Path:
        return self.run_dir / "weights" / "best.pt"


def train_config(
    config: str, options: SweepOptions, sweep_dir: Path, say: Callable[[str], None] = print
) -> ConfigResult:
    """Bring `config`'s run in `sweep_dir` to its end and return its best.pt's metrics: skipped when recorded,
    resumed from weights/last.pt when interrupted, started (in the same directory) otherwise."""
    run_dir = sweep_dir / run_name(config)
    record = read_record(run_dir)
    if record is not None:
        _check_same_config(record.get("config"), config, run_dir / RECORD)
        return ConfigResult(config, run_dir, "done", record["metrics"], how="skipped (finished before)")
    last = run_dir / "weights" / "last.pt"
    started = time.time()
    if last.exists():
        ckpt = load_named_checkpoint(last, "sweep")
        _check_same_config(ckpt.get("train_args", {}).get("cfg"), config, last)
        if ckpt.get("wrapped_up"):  # finished, killed before its record was written: validate best.pt again
            metrics, how = validate_best(run_dir, options), "validated (trained before)"
        else:
            say(f"resuming {last} after epoch {int(ckpt['epoch']) + 1}/{options.epochs}")
            resume = TrainOptions(resume=str(last), device=options.device, workers=options.workers)
            metrics, how = _train(resume), "resumed"
    else:
        metrics, how = _train(new_run_options(config, options, sweep_dir)), "trained"
    write_record(run_dir, config, metrics, time.time() - started)
    return ConfigResult(config, run_dir, "done", metrics, how=how)


def new_run_options(config: str, options: SweepOptions, sweep_dir: Path) -> TrainOptions:
    """train.py's options for `config`'s run: the sweep's training options, into <sweep>/<config name>, no plots
    (a sweep compares figures; each run's curves stay in its results.csv)."""
    return TrainOptions(
        cfg=config,
        data=options.data,
        epochs=options.epochs,
        imgsz=options.imgsz,
        batch_size=options.batch_size,
        hyp=options.hyp,
        seed=options.seed,
        device=options.device,
        workers=options.workers,
        project=str(sweep_dir),
        name=run_name(config),
        exist_ok=True,  # a run that failed before its first checkpoint starts again in its own directory
        noplots=True,
    )


def _train(train_options: TrainOptions) -> dict[str, float]:
    """Run the trainer; the metrics of its final validation (best.pt's)."""
    trainer = Trainer(train_options)
    trainer.train()
    return {key: float(trainer.metrics.get(key, 0.0)) for key in METRICS}


def validate_best(run_dir: Path, options: SweepOptions) -> dict[str, float]:
    """best.pt validated as the trainer's wrap-up validates it (same data and size), into <run>/val."""
    val_options = ValOptions(
        weights=str(run_dir / "weights" / "best.pt"),
        data=options.data,
        imgsz=options.imgsz,
        device=options.device,
        plots=False,
        workers=0,
        project=str(run_dir),
        name="val",
        exist_ok=True,
    )
    metrics = run_val(val_options).metrics
    return {key: float(metrics.get(key, 0.0)) for key in METRICS}


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The finished run's record, or None when there is none (not trained yet, or interrupted)."""
    path = run_dir / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return record if all(key in record.get("metrics", {}) for key in METRICS) else None
    except (json.JSONDecodeError, AttributeError):
        return None  # unreadable: the run is validated again, which rewrites it


def write_record(run_dir: Path, config: str, metrics: dict[str, float], seconds: float) -> Path:
    """`<run>/sweep_result.json`, written atomically after the run's wrap-up."""
    record = {"config": config, "metrics": metrics, "seconds": round(seconds, 1)}
    return atomic_write(run_dir / RECORD, json.dumps(record, indent=1))


def _check_same_config(found: str | None, config: str, path: Path) -> None:
    if found is not None and found != config:
        raise SweepRunError(f"{path} is a run of {found}, not {config}: use another --name for this sweep")


def first_line(error: BaseException) -> str:
    """An exception's message, first line only (a sweep row holds one line)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"
