"""One model, one score in every format: val.py on .pt, .torchscript and .onnx (fixed-size and --dynamic) of an
anchor-head and a DFL-head model gives the same metrics with default options, and an export validates on the
data set it was trained on (issue 16, items 2, 3 and 5).

The models are tiny (a C3 / C3k2 stage and a head on P3-P5) and trained for a few steps on synthetic data
with wide, tall and square images, so their detections are real (metrics well above 0) and a change in
what the network sees (the letterbox) or in how its output is read (the objectness column) moves them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import yaml

import val
from engine.export import export
from engine.formats import load_backend
from engine.metadata import ModelMetadata
from engine.train_options import TrainOptions
from engine.trainer import train
from engine.val_run import ValOptions, run_val
from engine.validator import validate
from tests.helpers import STILL_HYP, write_config
from tests.synthetic_data import make_synthetic_dataset

IMGSZ = 64
ASPECTS = (1.0, 1.6, 0.6)  # square, wide and tall images: rectangular batches would differ from the square
METRICS = ("precision", "recall", "map50", "map50_95")
TOLERANCE = 0.002
EPOCHS = {"anchor": 25, "dfl": 15}  # one step each (8 images, batch 8): enough for mAP50 > 0.1 on this data
_BACKBONE = [
    [-1, 1, "Conv", [8, 3, 2]],
    [-1, 1, "Conv", [16, 3, 2]],
    [-1, 1, "Conv", [16, 3, 2]],
    [-1, 1, "C3", [16]],  # P3
    [-1, 1, "Conv", [32, 3, 2]],  # P4
    [-1, 1, "Conv", [32, 3, 2]],  # P5
]
TINY_CONFIGS = {  # yolov5n-like and yolo11n-like, small enough to train and export in seconds
    "anchor": {
        "nc": 3,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "anchors": [[3, 4, 4, 8, 8, 6], [8, 15, 16, 11, 15, 30], [29, 22, 39, 50, 93, 81]],  # YOLOv5's / 4
        "backbone": _BACKBONE,
        "head": [[[3, 4, 5], 1, "Detect", ["nc", "anchors"]]],
    },
    "dfl": {
        "nc": 3,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "backbone": [row if row[2] != "C3" else [-1, 1, "C3k2", [16, False, 0.25]] for row in _BACKBONE],
        "head": [[[3, 4, 5], 1, "Detect", ["nc"]]],
    },
}


@dataclass
class FormatCase:
    """A trained checkpoint, its data, and its exports."""

    data: Path
    pt: Path
    torchscript: Path  # fixed size, batch 1 (export.py's defaults)
    onnx: Path  # fixed size, batch 1
    onnx_dynamic: Path


_CASES: dict[tuple[str, int], FormatCase] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("formats")


def format_case(head: str, nc: int, root: Path) -> FormatCase:
    """Train (once per process) a tiny model on synthetic data; export it with export.py's defaults (fixed
    size: the training size, batch 1) to TorchScript and ONNX, and to ONNX with --dynamic."""
    if (head, nc) not in _CASES:
        work = root / f"{head}_{nc}"
        data = make_synthetic_dataset(
            work / "data", n_train=8, imgsz=IMGSZ, nc=nc, aspect_ratios=ASPECTS, val_is_train=True
        )
        hyp = write_config(root, "still.yaml", STILL_HYP)
        options = TrainOptions(
            cfg=str(write_config(root, f"tiny_{head}.yaml", TINY_CONFIGS[head])),
            data=str(data),
            hyp=str(hyp),
            imgsz=IMGSZ,
            epochs=EPOCHS[head],
            batch_size=8,
            nbs=8,
            optimizer="AdamW",
            workers=0,
            cache="ram",
            noval=True,
            noplots=True,
            nosave=True,  # checkpoints once, at the end: writing them every one-step epoch took a fifth of the run
            bn_momentum=0.3,
            project=str(work),
        )
        pt = train(options) / "weights" / "best.pt"
        fixed = {r.format: r for r in export(pt, ["torchscript", "onnx"], latency_runs=1)}
        (work / "dynamic").mkdir()  # a --dynamic export beside the fixed one would overwrite it
        (dynamic,) = export(shutil.copy(pt, work / "dynamic"), ["onnx"], dynamic=True, latency_runs=1)
        for result in (*fixed.values(), dynamic):
            assert result.ok, result.error
        _CASES[head, nc] = FormatCase(data, pt, fixed["torchscript"].path, fixed["onnx"].path, dynamic.path)
    return _CASES[head, nc]


def _options(weights: Path, tmp_path: Path, **overrides: object) -> ValOptions:
    """val.py's defaults (no --data, no --imgsz), without plots, in tmp_path."""
    return ValOptions(weights=str(weights), plots=False, workers=0, project=str(tmp_path / "val"), **overrides)


def _assert_same_metrics(reference: dict[str, float], other: dict[str, float], label: str) -> None:
    for key in METRICS:
        assert abs(reference[key] - other[key]) <= TOLERANCE, (label, key, reference[key], other[key])


@pytest.mark.parametrize("head,nc", [("anchor", 1), ("anchor", 3), ("dfl", 1), ("dfl", 3)])
def test_every_format_scores_the_same_with_default_options(head: str, nc: int, root: Path, tmp_path: Path) -> None:
    case = format_case(head, nc, root)
    reference = run_val(_options(case.pt, tmp_path)).metrics
    assert reference["map50"] > 0.1 and reference["map50_95"] > 0.05, reference  # real detections to compare
    for weights in (case.torchscript, case.onnx, case.onnx_dynamic):
        _assert_same_metrics(reference, run_val(_options(weights, tmp_path)).metrics, str(weights))


@pytest.mark.parametrize("nc", [1, 3])
def test_torchscript_anchor_head_is_scored_through_its_backend(nc: int, root: Path, tmp_path: Path) -> None:
    """Item 2: a TorchScript YOLOv5-head model's objectness column is not read as a class (nc=1 crashed,
    nc=3 scored wrong per class), and validate() refuses a predictor that does not say which it has."""
    case = format_case("anchor", nc, root)
    reference = run_val(_options(case.pt, tmp_path, verbose=True)).per_class
    scripted = run_val(_options(case.torchscript, tmp_path, verbose=True)).per_class
    assert [row["name"] for row in scripted] == [row["name"] for row in reference]
    for ours, theirs in zip(scripted, reference):
        for key in ("precision", "recall", "map50", "map50_95"):
            assert abs(ours[key] - theirs[key]) <= TOLERANCE, (ours["name"], key, ours[key], theirs[key])
    raw_module = load_backend(case.torchscript, "cpu").model  # what val.py used to pass
    with pytest.raises(TypeError, match="DetectionModel or a Backend"):
        validate(raw_module, [], names={i: str(i) for i in range(nc)})


@pytest.mark.parametrize("head", ["anchor", "dfl"])
def test_fixed_size_export_sees_what_the_checkpoint_sees(
    head: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Item 3: the .pt is letterboxed into the square its fixed-size export takes. The data would show a
    difference: YOLOv5's rectangular batches (opt-in, --rect) score the same .pt differently here."""
    case = format_case(head, 3, root)
    square = run_val(_options(case.pt, tmp_path)).metrics
    _assert_same_metrics(square, run_val(_options(case.onnx, tmp_path)).metrics, "fixed-size onnx")
    rect = run_val(_options(case.pt, tmp_path, rect=True)).metrics
    assert max(abs(rect[key] - square[key]) for key in METRICS) > 5 * TOLERANCE, (rect, square)
    capsys.readouterr()
    fixed_with_rect = run_val(_options(case.onnx, tmp_path, rect=True)).metrics
    assert "WARNING: --rect ignored" in capsys.readouterr().out
    _assert_same_metrics(square, fixed_with_rect, "fixed-size onnx with --rect")


@pytest.mark.parametrize("data", ["recorded", "other nc", "other names"])
def test_exports_validate_on_their_training_data(
    data: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Item 5: an export carries its training data (name, nc, names); val.py uses it without --data, and data
    whose classes differ from the model's is refused in one line naming both."""
    case = format_case("anchor", 3, root)
    stored = {entry.key: entry.value for entry in onnx.load(str(case.onnx)).metadata_props}
    names = {i: f"class{i}" for i in range(3)}
    recorded = {"name": str(case.data), "nc": 3, "names": names, "single_cls": False}
    assert ModelMetadata.from_strings(stored, str(case.onnx)).data == recorded
    assert load_backend(case.torchscript, "cpu").metadata.data == recorded

    argv = ["--weights", str(case.onnx), "--project", str(tmp_path / "val"), "--workers", "0", "--no-plots"]
    if data == "other nc":
        other = make_synthetic_dataset(tmp_path / "one", n_train=1, n_val=1, imgsz=IMGSZ, nc=1)
        argv += ["--data", str(other)]
    elif data == "other names":
        other = make_synthetic_dataset(tmp_path / "renamed", n_train=1, n_val=1, imgsz=IMGSZ, nc=3)
        other.write_text(yaml.safe_dump({**yaml.safe_load(other.read_text()), "names": ["class0", "dog", "class2"]}))
        argv += ["--data", str(other)]
    code = val.main(argv)
    output = capsys.readouterr()
    if data == "recorded":
        assert code == 0
        assert f"Validating on {case.data}, the data {case.onnx} was trained on" in output.out
        return
    errors = output.err.splitlines()
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error:"), output.err[-800:]
    assert str(case.onnx) in errors[0] and str(other) in errors[0], errors[0]
    expected = "1 class (class0)" if data == "other nc" else "class 1 is 'class1' in the model, 'dog' in the data"
    assert expected in errors[0], errors[0]
