"""The suite's outputs: a markdown table (with the machine and versions) and a plot of latency against parameters."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import torch


def versions() -> str:
    """The runtimes the figures depend on, as installed here."""
    found = [f"torch {torch.__version__}", f"Python {platform.python_version()}"]
    for package in ("onnxruntime", "openvino", "nncf", "ultralytics", "yolov5"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # not installed: not listed
            found.append(f"{package} {importlib.metadata.version(package)}")
    return ", ".join(found)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    model_name = Path("/proc/cpuinfo")
    if model_name.exists():
        for line in model_name.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {torch.get_num_threads()} threads"


AGREEMENT = "mAP50 of the int8 detections scored against the fp32 model's; meaningful for trained weights only"


def latency_table(rows: list[dict], formats: list[str]) -> list[str]:
    """One row per model: parameters, GFLOPs and median ms per format ('-' where not timed)."""
    lines = [
        "| model | params (M) | GFLOPs | " + " | ".join(f"{f} ms" for f in formats) + " |",
        "|---|---|---|" + "---|" * len(formats),
    ]
    for row in rows:
        cells = [f"{row['latency'][f]:.1f}" if f in row["latency"] else "-" for f in formats]
        gflops = "-" if not row.get("gflops") else f"{row['gflops']:.{1 if row['gflops'] >= 1 else 3}f}"
        lines.append(f"| {row['name']} | {row['params'] / 1e6:.2f} | {gflops} | " + " | ".join(cells) + " |")
    agreements = [(row["name"], f, a) for row in rows for f, a in row.get("agreement", {}).items()]
    if agreements:
        lines += ["", f"int8 agreement with the fp32 model on the val split ({AGREEMENT}):", ""]
        lines += [f"- {name}, {fmt}: {agreement:.3f}" for name, fmt, agreement in agreements]
    return lines


def plot_latency(rows: list[dict], formats: list[str], path: Path, imgsz: int) -> Path:
    """Latency against parameters: one mark per model and format, a colour per format."""
    figure, axis = plt.subplots(figsize=(9, 6))
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(formats):
        points = [(row["params"] / 1e6, row["latency"][name], row["name"]) for row in rows if name in row["latency"]]
        if not points:
            continue
        xs, ys, labels = zip(*points)
        axis.scatter(xs, ys, color=colours(index % 10), label=name, s=30)
        if index == 0:
            for x, y, label in points:
                axis.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.set_xlabel("parameters (M, fused)")
    axis.set_ylabel(f"latency (ms, batch 1, {imgsz} px)")
    axis.set_title(f"CPU latency per format ({machine()})")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
