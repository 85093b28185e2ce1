"""sweep.py at tiny size: two tiny configs for one epoch and a broken one between them. A kill in the second
config's wrap-up stops the sweep; the rerun skips the finished config, resumes the killed one from its last.pt, reports
the broken one in its row and goes on, and writes the CSV, table and plot."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

import sweep
from benchmarks.sweep.options import SweepOptions
from benchmarks.sweep.report import pareto_front
from benchmarks.sweep.runs import RECORD, SweepRunError
from benchmarks.sweep.sweep import run_sweep
from engine.hooks.checkpoint import CheckpointHook
from tests.helpers import write_config
from tests.test_val_formats import TINY_CONFIGS


class Killed(BaseException):
    """Stands for a kill: not an Exception, so the sweep does not take it for one config's failure."""


def test_sweep_skips_finished_resumes_killed_and_survives_a_broken_config(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = str(write_config(tmp_path, "tiny_anchor.yaml", TINY_CONFIGS["anchor"]))
    dfl = str(write_config(tmp_path, "tiny_dfl.yaml", TINY_CONFIGS["dfl"]))
    broken = str(write_config(tmp_path, "broken.yaml", {**TINY_CONFIGS["dfl"], "backbone": [[-1, 1, "Nope", [8]]]}))
    options = SweepOptions(
        cfgs=(anchor, broken, dfl), data=str(tiny_data), epochs=1, imgsz=64, batch_size=4,
        project=str(tmp_path / "sweeps"), formats=("onnx",), runs=1,
    )  # fmt: skip
    sweep_dir = tmp_path / "sweeps" / "exp"

    wrap_up = CheckpointHook.after_train

    def killed_in_dfl_wrap_up(hook: CheckpointHook, trainer) -> None:
        if trainer.save_dir.name == "tiny_dfl":
            raise Killed
        wrap_up(hook, trainer)

    monkeypatch.setattr(CheckpointHook, "after_train", killed_in_dfl_wrap_up)
    with pytest.raises(Killed):
        run_sweep(options, log=lambda _: None)
    monkeypatch.undo()
    finished = sweep_dir / "tiny_anchor" / "weights" / "last.pt"
    finished_mtime = finished.stat().st_mtime_ns
    assert (sweep_dir / "tiny_anchor" / RECORD).is_file() and not (sweep_dir / "tiny_dfl" / RECORD).exists()
    assert (sweep_dir / "tiny_dfl" / "weights" / "last.pt").is_file()

    messages: list[str] = []
    run_sweep(options, log=messages.append)
    assert any("tiny_anchor.yaml: skipped" in m for m in messages), messages
    assert any("tiny_dfl.yaml: resumed" in m for m in messages), messages
    assert finished.stat().st_mtime_ns == finished_mtime  # not trained again
    with open(sweep_dir / "sweep.csv", newline="") as f:
        rows = {Path(row["config"]).stem: row for row in csv.DictReader(f)}
    assert list(rows) == ["tiny_anchor", "broken", "tiny_dfl"]
    assert rows["broken"]["status"] == "failed" and "Nope" in rows["broken"]["reason"]
    for name in ("tiny_anchor", "tiny_dfl"):
        row = rows[name]
        assert row["status"] == "done" and not row["reason"], row
        assert 0 <= float(row["mAP50-95"]) <= float(row["mAP50"]) <= 1 and int(row["params"]) > 1000
        assert float(row["eager fused ms"]) > 0 and float(row["onnx ms"]) > 0
        assert row["fastest format"] in ("eager fused", "onnx")
    assert any(row["pareto"] == "yes" for row in rows.values())
    table = (sweep_dir / "sweep.md").read_text()
    assert f"| {broken} | failed: ConfigError: " in table
    assert (sweep_dir / "sweep.png").stat().st_size > 10_000
    assert "Nope" in (sweep_dir / "errors.log").read_text()

    with pytest.raises(SweepRunError, match="--epochs 1, not --epochs 2"):
        run_sweep(replace(options, epochs=2), log=lambda _: None)  # skipped runs would not be comparable


def test_pareto_front_keeps_the_configs_nothing_beats() -> None:
    points = [(10.0, 0.30), (5.0, 0.20), (12.0, 0.25), None, (5.0, 0.10), (20.0, 0.40), (10.0, 0.30)]
    assert pareto_front(points) == [1, 0, 5]


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    project = ["--project", str(tmp_path / "runs")]
    assert sweep.main(["--cfgs", "yolo11n_mobilenet.yaml", *project]) == 2
    assert "error: --cfgs yolo11n_mobilenet.yaml: model config" in capsys.readouterr().err
    own = write_config(tmp_path, "yolo11n.yaml", TINY_CONFIGS["dfl"])
    assert sweep.main(["--cfgs", "yolo11n.yaml", str(own), *project]) == 2
    assert "would share the run directory 'yolo11n'" in capsys.readouterr().err
    assert sweep.main(["--cfgs", "yolo11n.yaml", "--data", "nope.yaml", *project]) == 2
    assert "error: data config 'nope.yaml' not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing started
