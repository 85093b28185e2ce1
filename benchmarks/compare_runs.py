"""Compare training runs by their learning curves: a table of mAP at chosen epochs and a plot of every curve.

python benchmarks/compare_runs.py runs/train/exp runs/train/exp2 --labels "yolov5 loss" "aligned loss"
python benchmarks/compare_runs.py a/results.csv b/results.csv --plot curves.png --metric metrics/mAP50
python benchmarks/compare_runs.py s0.csv s1.csv t0.csv t1.csv --groups yolov5n yolov5n yolo11n yolo11n --plot seeds.png

Each argument is a run directory (its results.csv is read) or a results.csv file. With a validation set as small
as the trees data's (2 images), one epoch's figure is noisy: the table also gives the best epoch and the mean of
the last five, which is what the written comparisons use. With `--groups` (one name per run, e.g. the model of
several seeds) the table adds each group's mean curve, and the plot draws a group's runs thin in one colour and
their mean thick.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_curve(path: Path, metric: str) -> list[float]:
    """The metric's value at every epoch of a results.csv (column names are stripped of padding)."""
    csv_path = path / "results.csv" if path.is_dir() else path
    with open(csv_path, newline="") as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    if rows and metric not in rows[0]:
        raise SystemExit(f"error: {csv_path} has no column {metric!r} (has: {', '.join(rows[0])})")
    return [float(row[metric]) for row in rows]


def summary_row(label: str, curve: list[float], epochs: list[int]) -> str:
    """One markdown table row: value at each chosen epoch, best (and its epoch), mean of the last five."""
    at = [f"{curve[e]:.3f}" if e < len(curve) else "—" for e in epochs]
    best = max(range(len(curve)), key=curve.__getitem__) if curve else 0
    last5 = sum(curve[-5:]) / max(len(curve[-5:]), 1)
    best_text = f"{curve[best]:.3f} (ep {best})" if curve else "—"
    return f"| {label} | {' | '.join(at)} | {best_text} | {last5:.3f} |"


def mean_curves(curves: dict[str, list[float]], groups: list[str]) -> dict[str, list[float]]:
    """Each group's epoch-wise mean over its runs (as long as its shortest run), in first-seen order."""
    members: dict[str, list[list[float]]] = {}
    for group, curve in zip(groups, curves.values()):
        members.setdefault(group, []).append(curve)
    return {group: [sum(values) / len(values) for values in zip(*runs)] for group, runs in members.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or results.csv files")
    parser.add_argument("--labels", nargs="+", help="one label per run (default: the directory names)")
    parser.add_argument("--metric", default="metrics/mAP50-95", help="results.csv column to compare")
    parser.add_argument("--epochs", nargs="+", type=int, default=[4, 9, 14, 19], help="0-based epochs to tabulate")
    parser.add_argument("--plot", type=Path, help="also save the curves to this image")
    parser.add_argument("--groups", nargs="+", help="one group name per run: adds each group's mean curve")
    args = parser.parse_args(argv)
    # a run folder is named by itself, a results.csv by its folder, any other CSV by its file name
    labels = args.labels or [
        r.name if r.is_dir() else r.parent.name if r.name == "results.csv" else r.stem for r in args.runs
    ]
    if len(labels) != len(args.runs):
        parser.error(f"--labels: {len(labels)} labels for {len(args.runs)} runs")
    if args.groups is not None and len(args.groups) != len(args.runs):
        parser.error(f"--groups: {len(args.groups)} groups for {len(args.runs)} runs")

    curves = {label: read_curve(run, args.metric) for label, run in zip(labels, args.runs)}
    print(f"{args.metric} by epoch (0-based)\n")
    print(f"| run | {' | '.join(f'ep {e}' for e in args.epochs)} | best | mean of last 5 |")
    print(f"|---|{'---|' * len(args.epochs)}---|---|")
    for label, curve in curves.items():
        print(summary_row(label, curve, args.epochs))
    means = mean_curves(curves, args.groups) if args.groups else {}
    for group, curve in means.items():
        print(summary_row(f"**{group}, mean of {args.groups.count(group)}**", curve, args.epochs))

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        if means:
            colours = {group: f"C{i}" for i, group in enumerate(means)}
            for group, (label, curve) in zip(args.groups, curves.items()):
                ax.plot(range(len(curve)), curve, color=colours[group], alpha=0.35, linewidth=0.9, label=label)
            for group, curve in means.items():
                ax.plot(range(len(curve)), curve, color=colours[group], linewidth=2.4, label=f"{group} (mean)")
        else:
            for label, curve in curves.items():
                ax.plot(range(len(curve)), curve, marker=".", label=label)
        ax.set(xlabel="epoch (0-based)", ylabel=args.metric, title=f"{args.metric} per epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
