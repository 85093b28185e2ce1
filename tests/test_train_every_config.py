"""Every config in cfg/ trains one optimiser step with the default options (channels-last on the CPU), and the
default --bn-calibration finds and re-measures its stem BatchNorm.

Training runs in a subprocess (tests/one_step_training.py), so a crash inside torch (torch 2.14.1 segfaults in the
channels-last backward of MobileOne's stem, utils/channels_last.py) fails the config it hit instead of killing
pytest. The configs run in one process to pay for the imports once; after a crash the rest run in a new one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from models.config import available_configs, read_yaml
from tests.one_step_training import REPORT_PREFIX, case_name
from tests.synthetic_data import make_synthetic_dataset

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 600  # a run that corrupted torch's heap can hang instead of crashing


def smallest_scale(path: Path) -> str | None:
    """The scale with the smallest width (then depth) for configs with `scales`, else None."""
    scales = read_yaml(path).get("scales")
    if not scales:
        return None
    return min(scales, key=lambda letter: (scales[letter][1], scales[letter][0]))


CASES = [(str(path), smallest_scale(path)) for path in available_configs()]
NAMES = [case_name(cfg, scale) for cfg, scale in CASES]


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _run_worker(data: Path, project: Path, cases: list[tuple[str, str | None]]) -> tuple[list[dict], str | None, str]:
    """Reports of one worker process; the failure (exit or timeout) if it did not finish; the tail of its output."""
    command = [sys.executable, "-m", "tests.one_step_training", str(data), str(project), json.dumps(cases)]
    # One thread: on a busy machine OpenMP's second thread makes each step 10-20x slower; the crash needs none.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        stdout, stderr = done.stdout, done.stderr
        failure = None if done.returncode == 0 else _describe_exit(done.returncode)
    except subprocess.TimeoutExpired as timeout:
        stdout, stderr = timeout.stdout or "", timeout.stderr or ""
        stdout, stderr = [s.decode() if isinstance(s, bytes) else s for s in (stdout, stderr)]
        failure = f"no exit after {RUN_TIMEOUT_S} s (hung)"
    reports = [json.loads(line[len(REPORT_PREFIX) :]) for line in stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    return reports, failure, (stdout + stderr)[-2000:]


@pytest.fixture(scope="module")
def one_step_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The worker's final report per config name; a config that killed its process gets an `error` report."""
    root = tmp_path_factory.mktemp("every-config")
    data = make_synthetic_dataset(root / "data", n_train=2, n_val=1, imgsz=64, nc=2)
    reports: dict[str, dict] = {}
    remaining = list(CASES)
    while remaining:
        events, failure, output_tail = _run_worker(data, root / "runs", remaining)
        started = [e["case"] for e in events if e["event"] == "start"]
        reports.update({e["case"]: e for e in events if e["event"] != "start"})
        if failure is not None:
            if not started:  # died before training anything: every config left fails with that output
                reports.update({case_name(*c): {"event": "error", "traceback": output_tail} for c in remaining})
                break
            # the config it was training (or had just trained: a crash is charged to the last one started)
            reports[started[-1]] = {"event": "error", "traceback": f"training process {failure}:\n{output_tail}"}
        remaining = [c for c in remaining if case_name(*c) not in started]
    return reports


@pytest.mark.parametrize("name", NAMES)
def test_config_trains_one_step_with_default_options(name: str, one_step_reports: dict[str, dict]) -> None:
    report = one_step_reports[name]
    assert report["event"] == "trained", report.get("traceback")
    assert report["optimiser_steps"] == 1
    assert report["channels_last"]
    # the workaround keeps only MobileOne-S0's stem 1x1 branch, Conv2d(3, 48, 1, stride=2), in NCHW
    expected = ["model.0.stem.scale_branch.conv"] if name.startswith("yolo11_mobileone") else []
    assert report["nchw_convs"] == expected
    # the default --bn-calibration found a stem BatchNorm and re-measured it on the 2 training images (one batch)
    assert report["stem"] and set(report["stem_batches"]) == {1} and report["stem_finite"], report
    if name.startswith("yolo11_mobileone"):  # MobileOne-S0's stem: a conv branch and a 1x1 scale branch, summed
        assert report["stem"] == ["model.0.stem.conv_branches.0.bn", "model.0.stem.scale_branch.bn"]
