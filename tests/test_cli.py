"""`python models/yolo.py` prints the layer table, the summary line and, with --fuse, the fused check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_model_summary_cli() -> None:
    result = subprocess.run(
        [sys.executable, "models/yolo.py", "--cfg", "yolo11n.yaml", "--nc", "3", "--imgsz", "128", "--fuse"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(re.match(r"\s+from\s+n\s+params\s+module\s+arguments", line) for line in lines)
    assert any(re.match(r"\s+23\s+\[16, 19, 22\]\s+1\s+[\d,]+\s+Detect", line) for line in lines)
    assert re.fullmatch(r"yolo11n summary: \d+ layers, [\d,]+ parameters, [\d.]+ GFLOPs", lines[-3])
    assert lines[-2].startswith("yolo11n (fused) summary:")
    difference = float(re.fullmatch(r"max \|fused - unfused\| = (\S+)", lines[-1]).group(1))
    assert difference <= 1e-4


def test_cli_reports_bad_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "models/yolo.py", "--cfg", "no_such_model.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "no_such_model.yaml" in result.stdout + result.stderr
