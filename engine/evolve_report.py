"""What a hyperparameter search leaves in its directory: evolve.csv (one row per trial), evolve.png (fitness against
trial with the running best) and best_hyp.yaml (the best trial's full hyperparameters, loadable by --hyp)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from utils.atomic_write import atomic_write

COMPLETE, PRUNED = "COMPLETE", "PRUNED"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the reports need it (from an Optuna FrozenTrial; plain, so the reports need no optuna).

    `fitness` is the trial's best-epoch fitness when complete, the last reported one when pruned, else None."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING or WAITING
    fitness: float | None
    params: Mapping[str, float] = field(default_factory=dict)
    epochs: int = 0  # epochs whose fitness the trial reported
    duration_s: float | None = None
    hyp: Mapping[str, float] | None = None  # every hyperparameter the trial trained with
    run_dir: str = ""


def best_trial(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The complete trial of highest fitness (the first such on ties); pruned trials stopped early, so never."""
    complete = [r for r in records if r.state == COMPLETE and r.fitness is not None]
    return max(complete, key=lambda r: (r.fitness, -r.number)) if complete else None


def write_evolve_csv(records: Sequence[TrialRecord], keys: Sequence[str], path: Path) -> Path:
    """evolve.csv: trial, state, fitness, epochs, seconds, one column per searched hyperparameter, run directory."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["trial", "state", "fitness", "epochs", "seconds", *keys, "run_dir"])
    for r in sorted(records, key=lambda r: r.number):
        writer.writerow(
            [
                r.number,
                r.state,
                "" if r.fitness is None else f"{r.fitness:.6g}",
                r.epochs,
                "" if r.duration_s is None else f"{r.duration_s:.0f}",
                *("" if k not in r.params else f"{r.params[k]:.6g}" for k in keys),
                r.run_dir,
            ]
        )
    return atomic_write(path, text.getvalue())


def plot_evolve(records: Sequence[TrialRecord], path: Path, title: str = "") -> Path:
    """evolve.png: each complete trial's fitness (dots), each pruned trial's last reported one (crosses), and the
    running best of the complete trials (a step line), against the trial number."""
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    ordered = sorted((r for r in records if r.fitness is not None), key=lambda r: r.number)
    complete = [r for r in ordered if r.state == COMPLETE]
    pruned = [r for r in ordered if r.state == PRUNED]
    if complete:
        axes.scatter([r.number for r in complete], [r.fitness for r in complete], color="C0", label="complete")
        best, xs, ys = float("-inf"), [], []
        for r in complete:
            best = max(best, r.fitness)
            xs.append(r.number)
            ys.append(best)
        xs.append(max(r.number for r in ordered))  # the best so far holds through the trials after it
        ys.append(best)
        axes.step(xs, ys, where="post", color="C1", label="running best")
    if pruned:
        axes.scatter([r.number for r in pruned], [r.fitness for r in pruned], marker="x", color="C3", label="pruned")
    start = next((r for r in complete if r.number == 0), None)
    if start is not None:
        axes.annotate("starting hyps", (start.number, start.fitness), textcoords="offset points", xytext=(6, -12))
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("fitness (0.1 mAP50 + 0.9 mAP50-95)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if complete or pruned:
        axes.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150)
    return atomic_write(path, buffer.getvalue())


def write_best_hyp(record: TrialRecord, path: Path, source: str) -> Path:
    """best_hyp.yaml: every hyperparameter of the best trial, flat as data/hyps/*.yaml, with where it came from."""
    if record.hyp is None:
        raise ValueError(f"trial {record.number} recorded no hyperparameters")
    header = f"# Best trial {record.number} of {source}: fitness {record.fitness:.6g}\n# Train with: --hyp {path}\n"
    return atomic_write(path, header + yaml.safe_dump(dict(record.hyp), sort_keys=False))
