"""Concurrent runs never share a run directory: the claim is one exclusive mkdir, tried from many threads and
processes at once, and two train.py processes started together with the same --project/--name end in exp and
exp2, each with its own results.csv. A run that fails before writing anything leaves no directory."""

from __future__ import annotations

import csv
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import detect as detect_script
import val as val_script
from tests.synthetic_data import make_synthetic_dataset
from utils.errors import StorageError
from utils.files import claim_run_dir

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = 12


def _expected(base: Path, count: int) -> set[Path]:
    return {base} | {Path(f"{base}{n}") for n in range(2, count + 1)}


def test_claims_from_many_threads_are_distinct(tmp_path: Path) -> None:
    base = tmp_path / "project" / "exp"  # the project folder too is created by the racing claims
    start = threading.Barrier(CLAIMS)
    claimed: list[Path] = []

    def claim() -> None:
        start.wait()
        claimed.append(claim_run_dir(base).path)

    threads = [threading.Thread(target=claim) for _ in range(CLAIMS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == CLAIMS and set(claimed) == _expected(base, CLAIMS)


def _claim_in_process(base: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    start.wait()
    results.put(str(claim_run_dir(base).path))


def test_claims_from_many_processes_are_distinct(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")  # no re-import of torch per process
    base = tmp_path / "exp"
    start, results = context.Barrier(CLAIMS), context.Queue()
    processes = [context.Process(target=_claim_in_process, args=(str(base), start, results)) for _ in range(CLAIMS)]
    for p in processes:
        p.start()
    claimed = [Path(results.get(timeout=60)) for _ in processes]
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert set(claimed) == _expected(base, CLAIMS)


def test_exist_ok_shares_and_failed_claims_are_released(tmp_path: Path) -> None:
    run = claim_run_dir(tmp_path / "a" / "b" / "exp")
    assert run.created == (tmp_path / "a" / "b" / "exp", tmp_path / "a" / "b", tmp_path / "a")
    assert claim_run_dir(run.path, exist_ok=True).path == run.path  # reused, not numbered
    (run.path / "results.csv").write_text("epoch\n")
    run.release_if_empty()  # the run wrote something: kept
    assert run.path.is_dir()
    with pytest.raises(RuntimeError), claim_run_dir(tmp_path / "a" / "b" / "exp") as second:
        assert second.path.name == "exp2"
        raise RuntimeError("the run failed before writing anything")
    assert not second.path.exists() and (tmp_path / "a" / "b").is_dir()


def test_a_file_in_the_way_is_one_storage_error(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("not a directory")
    with pytest.raises(StorageError, match=r"runs/exp: cannot create the run directory: Not a directory"):
        claim_run_dir(tmp_path / "runs" / "exp")
    (tmp_path / "exp").write_text("a file where the run would go")
    assert claim_run_dir(tmp_path / "exp").path == tmp_path / "exp2"  # numbered past it, as before


def test_val_and_detect_that_fail_leave_no_directory(tmp_path: Path, capsys) -> None:
    project = tmp_path / "runs"
    missing = str(tmp_path / "missing.pt")
    assert val_script.main(["--weights", missing, "--data", "trees.yaml", "--project", str(project)]) == 2
    assert detect_script.main(["--weights", missing, "--project", str(project), "--save-txt"]) == 2
    assert capsys.readouterr().err.count("error: weights not found") == 2
    assert not project.exists()


def test_two_trainings_started_together_get_their_own_directories(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=2, imgsz=64, nc=2, val_is_train=True)
    project = tmp_path / "runs"
    command = [
        sys.executable,
        "train.py",
        "--cfg",
        "yolo11n.yaml",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--noplots",
        "--project",
        str(project),
        "--name",
        "same",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, **pipes) for _ in range(2)]  # started together
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]
    assert sorted(p.name for p in project.iterdir()) == ["same", "same2"]
    for directory in project.iterdir():
        with open(directory / "results.csv", newline="") as f:
            epochs = [row[0] for row in list(csv.reader(f))[1:]]
        assert len(epochs) == 1, epochs  # each epoch once: the other run did not write here
        assert yaml.safe_load((directory / "args.yaml").read_text())["name"] == "same"
        assert (directory / "weights" / "best.pt").is_file() and (directory / "weights" / "last.pt").is_file()
    # each run said where it wrote, and the two places differ
    said = {next(line for line in out.splitlines() if "logging to" in line).split("logging to ")[1] for out in outputs}
    assert len(said) == 2
