"""The benchmark suite (benchmarks/run.py) end to end on one tiny config for one round: it times what it says."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmarks.run import main
from benchmarks.suite.ours import config_names
from benchmarks.suite.timing import interleaved_medians


def test_every_config_is_named_as_users_pass_it():
    names = config_names(("n",))
    assert {"yolov5n.yaml", "yolo11n.yaml", "yolov5s_mobileone.yaml", "yolo11n_mobilenetv4.yaml"} <= set(names)


def test_interleaved_medians_time_each_candidate():
    calls = {"a": 0, "b": 0}

    def count(name: str):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    medians = interleaved_medians({"a": count("a"), "b": count("b")}, runs=3, warmup=1)
    assert calls == {"a": 4, "b": 4} and all(ms >= 0 for ms in medians.values())


def test_suite_writes_a_table_and_a_plot(tmp_path: Path):
    argv = [
        "--configs", "yolov5n.yaml", "--imgsz", "64", "--runs", "1", "--formats", "onnx",
        "--train-configs", "yolo11n.yaml", "--train-imgsz", "64", "--train-batch", "2", "--train-steps", "1",
        "--int8-data", "trees.yaml", "--calib-images", "2", "--out", str(tmp_path),
    ]  # fmt: skip
    threads = torch.get_num_threads()
    assert main(argv) == 0
    assert torch.get_num_threads() == threads  # its --threads ends with it: the tests after it keep their count
    report = (tmp_path / "benchmark.md").read_text()
    latency_row = next(line for line in report.splitlines() if line.startswith("| yolov5n.yaml | 1.87"))
    eager, fused, onnx, onnx_int8, openvino_int8 = (float(cell) for cell in latency_row.strip("|").split("|")[3:8])
    assert min(eager, fused, onnx, onnx_int8, openvino_int8) > 0
    # its agreement is reported (nan here: random weights detect nothing on the trees to agree on)
    assert re.search(r"- yolov5n\.yaml, openvino int8: (nan|[01]\.\d{3})", report)
    training_row = re.search(r"\| yolo11n\.yaml \| ([\d.]+) \| ([\d.]+) \|", report)
    assert training_row and float(training_row[1]) > 0 and float(training_row[2]) > 0
    assert (tmp_path / "benchmark.png").stat().st_size > 10_000
