"""The sweep's outputs: sweep.csv (one row per config), sweep.md (the same as a table, with the machine and the
command) and sweep.png (mAP50-95 against latency, the Pareto front marked, one labelled point per config)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt

from benchmarks.sweep.latency import Latency
from benchmarks.sweep.runs import ConfigResult
from utils.atomic_write import atomic_write


@dataclass
class Row:
    """One config's line in every output."""

    result: ConfigResult
    latency: Latency | None  # None: not trained, so not timed
    pareto: bool = False

    @property
    def point(self) -> tuple[float, float] | None:
        """(fastest ms, mAP50-95), when the config has both."""
        if self.latency is None or self.latency.fastest is None or self.result.status != "done":
            return None
        return self.latency.fastest[1], self.result.metrics["map50_95"]

    @property
    def reason(self) -> str:
        """Why the row lacks figures: the training's failure, or the formats that could not be timed."""
        if self.result.reason:
            return self.result.reason
        errors = self.latency.errors if self.latency is not None else {}
        return "; ".join(f"{name} not timed: {error}" for name, error in errors.items())


def build_rows(results: Sequence[ConfigResult], latencies: dict[str, Latency]) -> list[Row]:
    """Rows in the sweep's config order, the Pareto-optimal ones marked."""
    rows = [Row(r, latencies.get(r.config)) for r in results]
    front = pareto_front([row.point for row in rows])
    for index in front:
        rows[index].pareto = True
    return rows


def pareto_front(points: Sequence[tuple[float, float] | None]) -> list[int]:
    """Indices of the points no other point beats: none is at least as fast and as accurate and better in one.
    Ordered by latency. `None` points (untimed configs) are never on the front."""
    order = sorted((i for i, p in enumerate(points) if p is not None), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def _ms(latency: Latency | None, name: str) -> str:
    return f"{latency.ms[name]:.2f}" if latency is not None and name in latency.ms else ""


def write_csv(rows: Sequence[Row], columns: Sequence[str], path: Path) -> Path:
    """sweep.csv: config, status, size, accuracy, median ms per format, the fastest format, Pareto, why not."""
    header = ["config", "status", "params", "GFLOPs", "mAP50", "mAP50-95"]
    header += [f"{name} ms" for name in columns] + ["fastest format", "fastest ms", "pareto", "run dir", "reason"]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        r, lat = row.result, row.latency
        done = r.status == "done"
        fastest = lat.fastest if lat is not None else None
        writer.writerow(
            [
                r.config,
                r.status,
                lat.parameters if lat is not None and lat.parameters else "",
                f"{lat.gflops:.2f}" if lat is not None and lat.gflops else "",
                f"{r.metrics['map50']:.4f}" if done else "",
                f"{r.metrics['map50_95']:.4f}" if done else "",
                *(_ms(lat, name) for name in columns),
                fastest[0] if fastest else "",
                f"{fastest[1]:.2f}" if fastest else "",
                "yes" if row.pareto else "",
                str(r.run_dir),
                row.reason,
            ]
        )
    return atomic_write(path, text.getvalue())


def markdown_table(rows: Sequence[Row], columns: Sequence[str]) -> list[str]:
    """The results as a markdown table; failed configs keep their row, with the reason."""
    lines = [
        "| config | params (M) | GFLOPs | mAP50 | mAP50-95 | " + " | ".join(f"{c} ms" for c in columns)
        + " | fastest | Pareto |",
        "|---|---|---|---|---|" + "---|" * len(columns) + "---|---|",
    ]  # fmt: skip
    for row in rows:
        r, lat = row.result, row.latency
        if r.status != "done":
            lines.append(f"| {r.config} | failed: {r.reason} |" + " |" * (len(columns) + 5))
            continue
        size = f"{lat.parameters / 1e6:.2f} | {lat.gflops:.2f}" if lat is not None and lat.parameters else "- | -"
        cells = [_ms(lat, name) or "-" for name in columns]
        fastest = lat.fastest if lat is not None else None
        lines.append(
            f"| {r.config} | {size} | {r.metrics['map50']:.3f} | {r.metrics['map50_95']:.3f} | "
            + " | ".join(cells)
            + f" | {fastest[0] if fastest else '-'} | {'yes' if row.pareto else ''} |"
        )
    notes = [f"- {row.result.config}: {row.reason}" for row in rows if row.result.status == "done" and row.reason]
    agreements = [
        f"- {row.result.config}, {name}: {value:.3f}"
        for row in rows
        if row.latency is not None
        for name, value in row.latency.agreement.items()
    ]
    if notes:
        lines += ["", "Not timed:", "", *notes]
    if agreements:
        lines += ["", "int8 agreement with the fp32 model on the val split (mAP50 of int8 against fp32 detections):"]
        lines += ["", *agreements]
    return lines


def plot_pareto(rows: Sequence[Row], path: Path, subtitle: str) -> Path:
    """mAP50-95 against the fastest format's latency: one labelled point per timed config, the Pareto front joined
    and filled, the others hollow."""
    figure, axis = plt.subplots(figsize=(9, 6))
    for row in rows:
        if row.point is None:
            continue
        x, y = row.point
        style = {"color": "tab:red", "s": 60, "zorder": 3} if row.pareto else {"facecolors": "none", "s": 50}
        axis.scatter([x], [y], edgecolors="tab:red" if row.pareto else "tab:blue", **style)
        label = f"{Path(row.result.config).stem} ({row.latency.fastest[0]})"
        axis.annotate(label, (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
    front = sorted(row.point for row in rows if row.pareto)
    if front:
        xs, ys = zip(*front)
        axis.step(xs, ys, where="post", color="tab:red", alpha=0.6, label="Pareto front (filled: on it)")
        axis.legend(fontsize=8, loc="lower right")
    axis.margins(x=0.25, y=0.1)  # room for the labels of the outermost points
    axis.set_xlabel("latency, fastest format (ms per image, batch 1)")
    axis.set_ylabel("mAP50-95 (best.pt, val split)")
    axis.set_title(f"Backbone sweep: accuracy against CPU latency\n{subtitle}", fontsize=10)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
