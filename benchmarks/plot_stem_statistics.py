"""Plot held-out and training-fit mAP50-95 per epoch with the BatchNorm statistics as saved (running averages) and
with the stem's re-measured (what --bn-calibration does by default), from the tables
benchmarks/batchnorm_staleness.py printed into benchmarks/results/trees/staleness/.

python benchmarks/plot_stem_statistics.py   # writes benchmarks/results/stem_statistics.png
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STALENESS = Path(__file__).resolve().parent / "results" / "trees" / "staleness"
RUNS = {  # label: table
    "yolo11n, 20 epochs": "yolo11n_20ep.md",
    "yolov5s_mobileone (main command), 20 epochs": "yolov5s_mobileone_20ep.md",
    "yolov5n, 60 epochs": "yolov5n_60ep.md",
}
ROW = re.compile(r"^\| (\d+) \| (\S+) \| ([\d.]+) \| ([\d.]+) \|")
STEM_GROUPS = {"stem": "stem", "layer:0": "stem", "saved": "saved"}  # layer:0 re-measures the same BatchNorm


def read_table(path: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """{group: {epoch: (held-out, fit)}} of the `saved` and stem rows of one staleness table."""
    rows: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match and match[2] in STEM_GROUPS:
            rows[STEM_GROUPS[match[2]]][int(match[1])] = (float(match[3]), float(match[4]))
    return rows


def main() -> None:
    fig, axes = plt.subplots(2, len(RUNS), figsize=(5 * len(RUNS), 7), sharex="col")
    for col, (label, table) in enumerate(RUNS.items()):
        rows = read_table(STALENESS / table)
        for group, style in (("saved", "o--"), ("stem", "s-")):
            epochs = sorted(rows[group])
            for row, name in enumerate(("held-out (2 other sites)", "training fit (37 tiles)")):
                values = [rows[group][e][row] for e in epochs]
                text = "as saved (running averages)" if group == "saved" else "stem re-measured (the default)"
                axes[row, col].plot(epochs, values, style, markersize=3, label=text)
                axes[row, col].set(ylabel=f"{name} mAP50-95")
        axes[0, col].set_title(label, fontsize=10)
        axes[1, col].set_xlabel("epoch (0-based)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = STALENESS.parent.parent / "stem_statistics.png"
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
