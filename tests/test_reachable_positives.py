"""benchmarks/reachable_positives.py: its training command trains with the reach-limited loss, and its count finds
positives beyond reach under the default assignment and none under the limited one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchmarks.reachable_positives import ReachableAlignedAnchorLoss, beyond_reach_share, main
from losses.base import LOSSES


@pytest.fixture
def registry_restored() -> Iterator[None]:
    """The train command registers its loss; other tests list the registered losses, so it is removed after."""
    assert ReachableAlignedAnchorLoss.__name__ not in LOSSES  # importing the module registered nothing
    yield
    LOSSES.pop(ReachableAlignedAnchorLoss.__name__, None)


@pytest.mark.usefixtures("registry_restored")
def test_train_with_the_limited_loss_then_count(tiny_data: Path, tmp_path: Path) -> None:
    args = ["--cfg", "yolov5n.yaml", "--data", str(tiny_data), "--epochs", "1", "--imgsz", "96", "--batch", "4"]
    args += ["--workers", "0", "--noplots", "--noval", "--project", str(tmp_path), "--name", "run"]
    assert main(["train", *args]) == 0
    run = tmp_path / "run"
    assert yaml.safe_load((run / "args.yaml").read_text())["loss"] == "ReachableAlignedAnchorLoss"
    weights = str(run / "weights" / "last.pt")
    default = beyond_reach_share(weights, str(tiny_data), batches=1, imgsz=96, batch_size=4)
    limited = beyond_reach_share(weights, str(tiny_data), batches=1, imgsz=96, batch_size=4, reachable_only=True)
    assert default["positives"] > 0 and 0 < default["share"] < 1 and default["beyond_reach"] > 0
    assert limited["positives"] > 0 and limited["beyond_reach"] == 0
