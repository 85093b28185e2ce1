"""benchmarks/compare_runs.py: per-run rows, and with --groups each group's epoch-wise mean curve and a plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.compare_runs import main, mean_curves


def write_curve(path: Path, values: list[float]) -> Path:
    rows = [f"{epoch},  {value}" for epoch, value in enumerate(values)]
    path.write_text("epoch,  metrics/mAP50-95\n" + "\n".join(rows) + "\n")
    return path


def test_group_means_are_epoch_wise_and_as_long_as_the_shortest_run() -> None:
    curves = {"a0": [0.0, 0.2, 0.4], "a1": [0.2, 0.4], "b0": [1.0, 1.0, 1.0]}
    means = mean_curves(curves, ["a", "a", "b"])
    assert list(means) == ["a", "b"]
    assert means["a"] == pytest.approx([0.1, 0.3]) and means["b"] == [1.0, 1.0, 1.0]


def test_groups_add_mean_rows_and_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [
        write_curve(tmp_path / "s0.csv", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        write_curve(tmp_path / "s1.csv", [0.0, 0.3, 0.4, 0.5, 0.6, 0.7]),
        write_curve(tmp_path / "t0.csv", [0.0, 0.0, 0.0, 0.1, 0.1, 0.1]),
    ]
    plot = tmp_path / "seeds.png"
    args = [*map(str, runs), "--groups", "s", "s", "t", "--epochs", "1", "5", "--plot", str(plot)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| **s, mean of 2** | 0.200 | 0.600 | 0.600 (ep 5) | 0.400 |" in table
    assert "| **t, mean of 1** | 0.000 | 0.100 | 0.100 (ep 3) | 0.060 |" in table
    assert "| s0 | 0.100 | 0.500 |" in table
    assert plot.stat().st_size > 10_000


def test_groups_must_name_every_run(tmp_path: Path) -> None:
    run = write_curve(tmp_path / "s0.csv", [0.1])
    with pytest.raises(SystemExit):
        main([str(run), "--groups", "a", "b"])
