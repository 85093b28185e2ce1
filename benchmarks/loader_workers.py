"""Seconds per epoch of the training data loader alone, by worker setup: in the main process (`--workers 0`), two
workers that persist across epochs (today's loader), and two workers forked anew every epoch (the loader before).

The setups take turns round by round in one process, each round building a fresh loader and iterating it for
`--epochs` epochs (calling set_epoch, as the trainer does), so a busy machine slows them alike. Epoch 0 of a round
includes starting its workers; the later epochs show what each epoch costs after that.

    OMP_NUM_THREADS=1 python benchmarks/loader_workers.py --rounds 3 --epochs 3

This times the loader in a small process; in the trainer, whose process is far larger, forking workers costs more
(copy-on-write faults as the trainer writes to its memory). `--train-epochs N` therefore also times whole training
epochs of train.py's loop (`--cfg`, no validation, no plots) with each setup, interleaved the same way: what decides
the CPU default of `--workers`, as workers share the cores with the training step.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

import engine.train_data  # noqa: E402
from dataio.data_config import load_data_config  # noqa: E402
from dataio.dataset import YoloDataset  # noqa: E402
from dataio.loader import build_dataloader  # noqa: E402
from engine.train_options import TrainOptions  # noqa: E402
from engine.trainer import train  # noqa: E402

SETUPS = {"0 workers": (0, True), "2 persistent": (2, True), "2 re-forked": (2, False)}


def time_epochs(dataset: YoloDataset, batch: int, workers: int, persistent: bool, epochs: int, seed: int) -> list:
    """Seconds of each of `epochs` epochs of a fresh loader (epoch 0 includes starting its workers)."""
    loader = build_dataloader(dataset, batch, workers=workers, seed=seed, persistent_workers=persistent)
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        loader.set_epoch(epoch)
        images = sum(len(b[0]) for b in loader)
        seconds.append(time.perf_counter() - start)
        assert images == len(dataset)
    del loader  # stops persistent workers before the next setup runs
    return seconds


def time_training_epochs(args: argparse.Namespace, workers: int, persistent: bool, project: Path) -> list:
    """Seconds of each epoch of a fresh training run (train.py's loop; the data loader built with `persistent`),
    from its before_epoch event to the end of its last step (the final validation left out)."""
    starts: list[float] = []
    ends: list[float] = []

    def step_done(trainer) -> None:
        del ends[len(starts) - 1 :]
        ends.append(time.perf_counter())

    options = TrainOptions(cfg=args.cfg, data=args.data, imgsz=args.imgsz, batch_size=args.batch,
                           epochs=args.train_epochs, workers=workers, device="cpu", noval=True, noplots=True,
                           project=str(project), exist_ok=True)  # fmt: skip
    builder = engine.train_data.build_dataloader
    engine.train_data.build_dataloader = functools.partial(builder, persistent_workers=persistent)
    try:
        train(options, callbacks={"before_epoch": [lambda _: starts.append(time.perf_counter())],
                                  "after_step": [step_done]})  # fmt: skip
    finally:
        engine.train_data.build_dataloader = builder
    return [end - start for start, end in zip(starts, ends)]


def interleaved(setups: list[str], rounds: int, run, label: str) -> dict[str, list[list[float]]]:
    """`run(name, round)` for every setup, `rounds` times, in a shuffled order each round."""
    times: dict[str, list[list[float]]] = {name: [] for name in setups}
    rng = random.Random(0)
    for r in range(rounds):
        order = list(setups)
        rng.shuffle(order)
        for name in order:
            times[name].append(run(name, r))
            print(f"{label} round {r} {name}: " + " ".join(f"{s:.2f}" for s in times[name][-1]), flush=True)
    return times


def table(times: dict[str, list[list[float]]], images: int, what: str) -> list[str]:
    """Median seconds of epoch 0 and of the later epochs per setup, and each setup's speed against the others as
    the median of per-round ratios (the setups of one round ran under the same machine load)."""

    def later(run: list[float]) -> float:
        return statistics.median(run[1:])

    def speedup(name: str, baseline: str) -> float:
        return statistics.median(later(b) / later(r) for r, b in zip(times[name], times[baseline]))

    rows = [
        f"| setup | {what}: epoch 0 (starts workers), s | later epochs, s | images/s (later epochs) "
        "| speed vs 0 workers | speed vs 2 re-forked |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in times.items():
        first = statistics.median(run[0] for run in runs)
        seconds = statistics.median(s for run in runs for s in run[1:])
        rows.append(
            f"| {name} | {first:.2f} | {seconds:.2f} | {images / seconds:.1f} | {speedup(name, '0 workers'):.2f}x "
            f"| {speedup(name, '2 re-forked'):.2f}x |"
        )
    return rows


def per_round(times: dict[str, list[list[float]]]) -> str:
    return "; ".join(
        f"{name}: " + ", ".join(" ".join(f"{s:.2f}" for s in run) for run in runs) for name, runs in times.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "data" / "trees.yaml"))
    parser.add_argument("--hyp", default=str(ROOT / "data" / "hyps" / "hyp.scratch-dfl.yaml"))
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-epochs", type=int, default=0, help="also time N-epoch training runs (0: not)")
    parser.add_argument("--train-rounds", type=int, default=1)
    parser.add_argument("--cfg", default="yolov5n.yaml", help="the model of the training runs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "loader_workers.md"))
    args = parser.parse_args()

    data = load_data_config(args.data)
    hyp = yaml.safe_load(Path(args.hyp).read_text())
    # As the trainer builds it: augmented, images cached in RAM (--cache auto picks RAM for data this small).
    dataset = YoloDataset(data.train, imgsz=args.imgsz, augment=True, hyp=hyp, batch_size=args.batch, nc=data.nc,
                          cache_images="ram", prefix="train: ")  # fmt: skip
    load_before = os.getloadavg()

    def loader_run(name: str, r: int) -> list[float]:
        return time_epochs(dataset, args.batch, *SETUPS[name], args.epochs, seed=r)

    loader_times = interleaved(list(SETUPS), args.rounds, loader_run, "loader")
    training_times = None
    if args.train_epochs:
        with TemporaryDirectory() as project:

            def training_run(name: str, r: int) -> list[float]:
                return time_training_epochs(args, *SETUPS[name], Path(project))

            training_times = interleaved(list(SETUPS), args.train_rounds, training_run, "training")
    load_after = os.getloadavg()

    command = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} python benchmarks/loader_workers.py " + (
        f"--rounds {args.rounds} --epochs {args.epochs}"
        + (f" --train-epochs {args.train_epochs} --train-rounds {args.train_rounds}" if args.train_epochs else "")
    )
    rows = [
        f"# Data loader workers: seconds per epoch by worker setup ({Path(args.data).name}, {len(dataset)} images, "
        f"{args.imgsz} px, batch {args.batch}, mosaic on)",
        "",
        f"`{command}`; the setups interleaved round by round (in a shuffled order), medians over the rounds.",
        "",
        f"The training loader alone ({args.rounds} rounds, each a fresh loader iterated {args.epochs} epochs):",
        "",
        *table(loader_times, len(dataset), "loader"),
    ]
    if training_times:
        rows += [
            "",
            f"Training epochs of {args.cfg} (train.py's loop, no validation; {args.train_rounds} round(s) of a "
            f"{args.train_epochs}-epoch run per setup):",
            "",
            *table(training_times, len(dataset), "training"),
        ]
    rows += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other processes (load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after); Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        "",
        f"Per-round seconds, loader: {per_round(loader_times)}."
        + (f" Training: {per_round(training_times)}." if training_times else ""),
    ]
    Path(args.out).write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
