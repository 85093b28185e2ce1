"""Plot held-out trees found per epoch (at detect.py's 0.25 confidence, IoU 0.5) beside mAP50-95, from the CSVs in
benchmarks/results/trees/ (their columns: epoch, trees_found_at_0.25 and the run's results.csv).

python benchmarks/plot_trees_found.py   # writes benchmarks/results/trees_found.png
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

TREES = Path(__file__).resolve().parent / "results" / "trees"
RUNS = {  # label: (trees-found CSV, results CSV)
    "yolov5s_mobileone (main command), 20 epochs": (
        "yolov5s_mobileone_20ep_topk30_per_epoch_diagnostics.csv",
        "yolov5s_mobileone_20ep_aligned_loss_topk30.csv",
    ),
    "yolov5n, 60 epochs": ("yolov5n_60ep_topk30_trees_found.csv", "yolov5n_60ep_topk30.csv"),
}


def column(path: Path, name: str) -> list[float]:
    with open(path, newline="") as f:
        return [float({k.strip(): v for k, v in row.items()}[name]) for row in csv.DictReader(f)]


def main() -> None:
    fig, (found_ax, map_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, (found_csv, results_csv) in RUNS.items():
        found_ax.plot(column(TREES / found_csv, "trees_found_at_0.25"), marker=".", label=label)
        map_ax.plot(column(TREES / results_csv, "metrics/mAP50-95"), marker=".", label=label)
    found_ax.axhline(49, color="grey", linestyle="--", label="the issue's bar: half of the 98 trees")
    found_ax.set(xlabel="epoch", ylabel="held-out trees found (conf 0.25, IoU 0.5)", title="Trees found per epoch")
    map_ax.set(xlabel="epoch", ylabel="held-out mAP50-95", title="mAP50-95 per epoch")
    for ax in (found_ax, map_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = TREES.parent / "trees_found.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
