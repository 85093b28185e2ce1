"""kill -9 at random points of a training run (inside checkpoint writes, between hooks, during the wrap-up), each
followed by a restart or `--resume`: the run completes with the weights, best.pt and results.csv of a run that
was never interrupted, and after every kill the files on disk are consistent.

The resumes also run with the --hyp file moved away, and the last one with it edited (lr0 1e6): a resume that read
the file again would refuse to start, or diverge from the uninterrupted run.

The points are drawn with a seeded RNG; the seed is printed and FAULT_KILL_SEED=<seed> replays a failure.
tests/kill_driver.py does the killing: it runs train.py's main in a subprocess and SIGKILLs itself at a named
point, so nothing in the training code knows about the test.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import train
from tests.fault_helpers import csv_epochs, differing_tensors, make_fault_data, temp_files, train_argv
from tests.kill_driver import HANDLER_EVENTS, instrumented
from utils.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 3
CHECKPOINTS = ("best.pt", "last.pt")


def point_epoch(label: str) -> int:
    return int(label.split(":")[0][1:])


def point_event(label: str) -> str:
    return label.split(":")[1]


def points_of_next_run(points: list[str], run: Path) -> list[str]:
    """The kill points the run started after a kill will pass: a fresh start passes them all; a resume passes the
    epochs after last.pt's and the wrap-up, or only the wrap-up when every epoch is trained."""
    last = run / "weights" / "last.pt"
    if not last.exists():
        return points
    ckpt = load_checkpoint(last)
    if ckpt["training_done"]:
        return [p for p in points if point_event(p) == "after_train"]
    return [p for p in points if point_event(p) == "after_train" or point_epoch(p) > ckpt["epoch"]]


def next_argv(run: Path, fresh_argv: list[str]) -> list[str]:
    """What a user runs after a kill: --resume when last.pt exists, else the same command again."""
    last = run / "weights" / "last.pt"
    return ["--resume", str(last)] if last.exists() else [*fresh_argv, "--exist-ok"]


def check_consistent(run: Path, where: str) -> None:
    """After a kill: every checkpoint loads; once last.pt exists best.pt does and holds last.pt's best epoch (or the
    epoch after last.pt's, when the kill fell between writing the two); results.csv has each epoch at most once."""
    weights = run / "weights"
    for path in weights.glob("*.pt"):
        load_checkpoint(path)  # raises if torn
    epochs = csv_epochs(run)
    assert epochs == list(range(len(epochs))), f"{where}: results.csv epochs {epochs}"
    last = weights / "last.pt"
    if not last.exists():
        return
    assert (weights / "best.pt").exists(), f"{where}: last.pt without best.pt"
    last_ckpt, best_ckpt = load_checkpoint(last), load_checkpoint(weights / "best.pt")
    allowed = (last_ckpt["best_epoch"], last_ckpt["epoch"] + 1)
    assert best_ckpt["epoch"] in allowed, f"{where}: best.pt epoch {best_ckpt['epoch']}, last.pt names {allowed[0]}"
    assert len(epochs) >= last_ckpt["epoch"] + 1, f"{where}: results.csv behind last.pt"


def run_killed(kill_at: str, argv: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.kill_driver", kill_at, *argv]
    # The thread count of the in-process runs: results are bit-exact only at equal counts, and this process's count
    # need not be what OMP_NUM_THREADS says (torch.set_num_threads by code that ran before in it).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_kills_at_random_points_then_resume_match_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    seed = int(os.environ.get("FAULT_KILL_SEED", random.SystemRandom().randrange(1_000_000)))
    print(f"FAULT_KILL_SEED={seed}")
    rng = random.Random(seed)
    data, hyp = make_fault_data(tmp_path)
    original_hyp, moved_hyp = hyp.read_text(), tmp_path / "moved.yaml"

    points: list[str] = []
    with instrumented(record=points):
        assert train.main(train_argv(data, hyp, tmp_path, "straight", EPOCHS)) == 0
    points = [p for p in points if point_event(p) in HANDLER_EVENTS]  # not the setup's writes
    straight = tmp_path / "straight"
    # best.pt is written before last.pt in each epoch, and stripped before it in the wrap-up
    for epoch in range(EPOCHS):
        for event in ("after_epoch", "after_train"):
            writes = [p for p in points if p.startswith(f"e{epoch}:{event}:") and p.endswith(":start")]
            names = [w.split(":")[2] for w in writes if w.split(":")[2] in CHECKPOINTS]
            assert names in ([], ["last.pt"], ["best.pt", "last.pt"]), (epoch, event, names)
    assert any(f"e{e}:after_epoch:best.pt:start" in points for e in range(1, EPOCHS)), "best.pt never moved"

    # kill 1 inside a checkpoint write of an epoch before the last; kill 2 anywhere after a later epoch;
    # kill 3 in the wrap-up. Each next run passes the points of points_of_next_run.
    in_writes = [p for p in points if p.split(":")[2] in CHECKPOINTS and point_epoch(p) < EPOCHS - 1]
    in_writes = [p for p in in_writes if point_event(p) == "after_epoch"]
    fresh = train_argv(data, hyp, tmp_path, "killed", EPOCHS)
    run, argv, orphans = tmp_path / "killed", fresh, 0
    kill_at = rng.choice(in_writes)
    for k in range(3):
        if argv[0] == "--resume" and hyp.exists():
            shutil.move(hyp, moved_hyp)  # a resume does not need it
        elif argv[0] != "--resume" and moved_hyp.exists():
            shutil.move(moved_hyp, hyp)  # a fresh start does
        result = run_killed(kill_at, argv)
        where = f"seed {seed}, kill {k + 1} at {kill_at}"
        assert result.returncode == -9, f"{where}: exit {result.returncode}\n{result.stderr[-3000:]}"
        check_consistent(run, where)
        orphans += len(temp_files(run))
        argv = next_argv(run, fresh)
        upcoming = points_of_next_run(points, run)
        training = [p for p in upcoming if point_event(p) == "after_epoch"]
        kill_at = rng.choice(training if k == 0 and training else [p for p in upcoming if "after_train" in p])
    hyp.write_text(yaml.safe_dump({**yaml.safe_load(original_hyp), "lr0": 1e6}))
    capsys.readouterr()
    if load_checkpoint(run / "weights" / "last.pt")["wrapped_up"]:  # killed after the wrap-up's last write
        assert train.main(argv) == 2 and "run is finished" in capsys.readouterr().err
        for path in temp_files(run):  # what a user may delete by hand; nothing else is left to do
            path.unlink()
    else:
        for path in (run / "weights" / ".last.pt.planted.tmp", run / ".results.csv.planted.tmp"):
            path.write_bytes(b"left by a kill")
        assert train.main(argv) == 0, f"seed {seed}: the final resume failed"
        output = capsys.readouterr().out
        assert f"Validating {run / 'weights' / 'best.pt'}" in output, f"seed {seed}: the wrap-up was not finished"
    print(f"FAULT_KILL_SEED={seed}: {orphans} orphan temp files seen after kills")

    assert not temp_files(run), temp_files(run)
    assert (run / "hyp.yaml").read_text() == (straight / "hyp.yaml").read_text()
    assert csv_epochs(run) == list(range(EPOCHS))
    assert (run / "results.csv").read_text() == (straight / "results.csv").read_text(), f"seed {seed}"
    for name in CHECKPOINTS:
        expected, got = load_checkpoint(straight / "weights" / name), load_checkpoint(run / "weights" / name)
        assert got["wrapped_up"] and got["optimizer"] is None, f"seed {seed}: {name} not stripped"
        assert got["epoch"] == expected["epoch"], (name, got["epoch"], expected["epoch"])
        different = differing_tensors(expected["model"], got["model"])
        assert not different, f"seed {seed}: {name}: {len(different)} tensors differ, e.g. {different[:3]}"
    last, best = load_checkpoint(run / "weights" / "last.pt"), load_checkpoint(run / "weights" / "best.pt")
    assert best["epoch"] == last["best_epoch"]
