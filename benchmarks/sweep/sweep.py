"""`run_sweep`: sweep.py as a library call. Train each config (skipping finished runs, resuming interrupted ones, going
on past a failing one), then time all of them in one interleaved stage, then write sweep.csv, sweep.md and sweep.png
into <project>/<name>."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import yaml

from benchmarks.suite.report import machine, versions
from benchmarks.sweep.configs import resolve_configs, run_name
from benchmarks.sweep.latency import format_columns, time_configs
from benchmarks.sweep.options import SweepOptions
from benchmarks.sweep.report import build_rows, markdown_table, plot_pareto, write_csv
from benchmarks.sweep.runs import ConfigResult, SweepRunError, first_line, train_config
from dataio.data_config import load_data_config
from utils.atomic_write import atomic_write
from utils.errors import UserError
from utils.files import load_yaml

SETTINGS = "sweep_args.yaml"  # the training options of the sweep in this directory: a rerun must match them
ERRORS = "errors.log"  # each failed config's error (with its traceback when it is not the user's mistake)


def say(message: str) -> None:
    print(f"sweep: {message}", flush=True)


def run_sweep(options: SweepOptions, command: str = "", log: Callable[[str], None] = say) -> Path:
    """Run the sweep `options` describe; returns its directory. Bad arguments raise a UserError before any run."""
    configs = resolve_configs(options.cfgs, options.scale)
    load_data_config(options.data)  # a missing or broken data YAML: one line now, not once per config
    sweep_dir = Path(options.project) / options.name
    check_settings(sweep_dir, options)
    log(f"{len(configs)} configs, {options.epochs} epochs at {options.imgsz} px on {options.data}, into {sweep_dir}")
    results: list[ConfigResult] = []
    for index, config in enumerate(configs, 1):
        prefix = f"[{index}/{len(configs)}] {config}"
        log(f"{prefix}: run {sweep_dir / run_name(config)}")
        started = time.time()
        try:
            result = train_config(config, options, sweep_dir, lambda message, p=prefix: log(f"{p}: {message}"))
        except Exception as e:  # one config's failure (bad config, crash) is its row's; the sweep goes on
            result = ConfigResult(
                config, sweep_dir / run_name(config), "failed", reason=f"{type(e).__name__}: {first_line(e)}"
            )
            record_error(sweep_dir / ERRORS, config, e)
            log(f"{prefix}: FAILED: {result.reason} (details in {sweep_dir / ERRORS})")
        else:
            m = result.metrics
            log(
                f"{prefix}: {result.how} in {time.time() - started:.0f} s: mAP50 {m['map50']:.3f} "
                f"mAP50-95 {m['map50_95']:.3f}"
            )
        results.append(result)
    latencies = time_configs(results, options, log)
    rows = build_rows(results, latencies)
    columns = format_columns(options)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    hyp = f"the hyperparameters of {options.hyp}" if options.hyp else "its head's default hyperparameters"
    setting = f"{options.epochs} epochs at {options.imgsz} px on {options.data}"
    write_csv(rows, columns, sweep_dir / "sweep.csv")
    plot_pareto(rows, sweep_dir / "sweep.png", f"{setting}; CPU latency: {machine()}")
    text = [
        f"# Backbone sweep ({when})",
        "",
        f"Command: `{command or 'run_sweep(...)'}`",
        "",
        f"Training: {setting}, each config from scratch with {hyp}, seed {options.seed}, batch "
        f"{options.batch_size}. mAP50 and mAP50-95: each run's best.pt on the val split.",
        "",
        f"Latency: batch 1 at {options.imgsz} px on CPU, fused weights, median of {options.runs} rounds in which "
        "every config and format runs once in a new random order (all configs timed together after training). "
        f"Machine: {machine()}. Versions: {versions()}.",
        "",
        *markdown_table(rows, columns),
        "",
        "![mAP50-95 against latency](sweep.png)",
    ]
    atomic_write(sweep_dir / "sweep.md", "\n".join(text) + "\n")
    for line in markdown_table(rows, columns):
        print(line)
    log(f"wrote {sweep_dir / 'sweep.csv'}, sweep.md and sweep.png")
    return sweep_dir


def check_settings(sweep_dir: Path, options: SweepOptions) -> None:
    """Record the sweep's training options in its directory, or check a rerun gives the same ones: finished configs
    are skipped, so a rerun with other epochs or data would compare runs trained differently."""
    path = sweep_dir / SETTINGS
    values = options.training_values()
    if path.is_file():
        before = load_yaml(path, SweepRunError) or {}
        changed = [key for key in values if before.get(key) != values[key]]
        if changed:
            was = " ".join(f"--{key.replace('_', '-')} {before.get(key)}" for key in changed)
            now = " ".join(f"--{key.replace('_', '-')} {values[key]}" for key in changed)
            raise SweepRunError(
                f"{sweep_dir} holds a sweep trained with {was}, not {now}: rerun it with those, or give another --name"
            )
        return
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(path, yaml.safe_dump(values, sort_keys=False))


def record_error(path: Path, config: str, error: Exception) -> None:
    """Append the config's error to errors.log: the message for the user's mistakes, the traceback for the rest."""
    detail = str(error) if isinstance(error, UserError) else "".join(traceback.format_exception(error))
    with open(path, "a") as f:
        f.write(f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} {config}\n{detail.rstrip()}\n")
