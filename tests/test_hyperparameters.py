"""Hyperparameter files: the flat YAMLs read into typed sections, validated once on load with one-line errors that
name the file and the key; train.py stops on them before anything is written; checkpoints keep a plain dict."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train
from engine.hyperparameters import (
    HYP_DIR,
    HyperparameterError,
    Hyperparameters,
    default_hyp_path,
    hyperparameters_for,
    load_hyperparameters,
)
from losses import AlignedAnchorLossHyp, DFLLossHyp, build_loss
from models.detection_model import DetectionModel
from tests.helpers import STILL_HYP
from tests.test_losses import tiny_config
from utils.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def models() -> dict[str, DetectionModel]:
    return {family: DetectionModel(tiny_config(family)) for family in ("anchor", "dfl")}


def _write(tmp_path: Path, values: dict, name: str = "hyp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("family", ["anchor", "dfl"])
def test_bundled_files_load_into_sections(family: str, models: dict) -> None:
    model = models[family]
    hyp = hyperparameters_for(model)
    flat = yaml.safe_load(default_hyp_path(model).read_text())
    assert hyp.to_dict() == flat and list(hyp.to_dict()) == list(flat)  # every key, in the file's order
    assert type(hyp.loss) is {"anchor": AlignedAnchorLossHyp, "dfl": DFLLossHyp}[family]
    assert hyp.optimizer.lr0 == hyp["lr0"] == flat["lr0"] and hyp.augmentation.mosaic == flat["mosaic"]
    assert type(hyp.to_dict()) is dict and len(hyp) == len(flat)


def test_every_file_in_data_hyps_loads_for_its_loss(models: dict) -> None:
    losses = {"hyp.scratch-anchor.yaml": None, "hyp.scratch-yolov5.yaml": "AnchorLoss", "hyp.scratch-dfl.yaml": None}
    # every hyp file is checked here; beside them, --evolve's search space (tests/test_evolve.py loads it)
    assert sorted(path.name for path in HYP_DIR.glob("hyp.*.yaml")) == sorted(losses)
    assert {path.name for path in HYP_DIR.glob("*.yaml")} - set(losses) == {"evolve_space.yaml"}
    for name, loss in losses.items():
        family = "dfl" if "dfl" in name else "anchor"
        assert hyperparameters_for(models[family], HYP_DIR / name, loss).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr00": 0.01}, "unknown key 'lr00' (did you mean lr0?)"),
        ({"mosiac": 1.0}, "unknown key 'mosiac' (did you mean mosaic?)"),
        ({"lr0": "abc"}, "'lr0' must be a number, got 'abc'"),
        ({"mosaic": True}, "'mosaic' must be a number, got True"),
        ({"obj": "high"}, "'obj' must be a number, got 'high'"),  # another head's gain: unused here, still checked
        ({"dfl": None}, "'dfl' must be a number, got None"),
    ],
)
def test_bad_keys_and_values_are_one_line_naming_file_and_key(
    change: dict, message: str, tmp_path: Path, models: dict
) -> None:
    path = _write(tmp_path, {**STILL_HYP, **change}, "x.yaml")
    with pytest.raises(HyperparameterError) as error:
        hyperparameters_for(models["dfl"], path)
    assert str(error.value) == f"{path}: {message}"


def test_missing_keys_the_loss_or_optimiser_needs(tmp_path: Path, models: dict) -> None:
    dfl_file = default_hyp_path(models["dfl"])
    with pytest.raises(HyperparameterError, match=r"hyp.scratch-dfl.yaml: missing key 'obj'"):
        hyperparameters_for(models["anchor"], dfl_file)  # the DFL head's file lacks the anchor loss's gains
    without_lr0 = _write(tmp_path, {k: v for k, v in STILL_HYP.items() if k != "lr0"})
    with pytest.raises(HyperparameterError, match=r"hyp.yaml: missing key 'lr0' \(OptimizerHyp\)$"):
        hyperparameters_for(models["anchor"], without_lr0)


def test_optional_keys_take_the_references_defaults(tmp_path: Path, models: dict) -> None:
    needed = {k: STILL_HYP[k] for k in ("lr0", "lrf", "momentum", "weight_decay", "warmup_epochs")}
    hyp = hyperparameters_for(
        models["dfl"], _write(tmp_path, {**needed, "box": 7.5, "cls": 0.5, "dfl": 1.5, "label_smoothing": 0})
    )
    assert (hyp.optimizer.warmup_bias_lr, hyp.augmentation.fliplr, hyp.augmentation.mosaic) == (0.1, 0.5, 1.0)
    assert hyp.loss.label_smoothing == 0.0 and isinstance(hyp.loss.label_smoothing, float)  # ints become floats


def test_a_union_file_serves_both_heads(tmp_path: Path, models: dict) -> None:
    path = _write(tmp_path, STILL_HYP)
    anchor, dfl = hyperparameters_for(models["anchor"], path), hyperparameters_for(models["dfl"], path)
    assert anchor.loss == AlignedAnchorLossHyp(**{k: STILL_HYP[k] for k in AlignedAnchorLossHyp.__dataclass_fields__})
    assert dfl.loss == DFLLossHyp(box=7.5, cls=0.5, dfl=1.5, label_smoothing=0.0)
    assert "obj" not in dfl.to_dict()  # a run records what it uses


def test_yolov5_keys_nothing_reads_load_with_a_warning(tmp_path: Path, models: dict, capsys) -> None:
    path = _write(tmp_path, {**STILL_HYP, "iou_t": 0.2, "copy_paste": 0.0})
    hyp = hyperparameters_for(models["anchor"], path)
    warning = capsys.readouterr().out
    assert f"{path}: ignoring " in warning and "iou_t (YOLOv5 does not read it either)" in warning
    assert "copy_paste" in warning and "iou_t" not in hyp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping of hyperparameters, got NoneType"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("a: [", "invalid YAML"),
    ],
)
def test_files_that_are_not_mappings(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HyperparameterError, match=f"bad.yaml: {message}"):
        load_hyperparameters(path, DFLLossHyp)
    with pytest.raises(HyperparameterError, match="--hyp .*nothing.yaml: file not found"):
        load_hyperparameters(tmp_path / "nothing.yaml", DFLLossHyp)


def test_changes_are_copies_and_losses_read_their_section(models: dict) -> None:
    hyp = hyperparameters_for(models["anchor"])
    smoothed = hyp.replace(label_smoothing=0.1, lr0=0.02)
    assert (smoothed.loss.label_smoothing, smoothed["lr0"], hyp.loss.label_smoothing) == (0.1, 0.02, 0.0)
    with pytest.raises(HyperparameterError, match="unknown key 'dfl'"):
        hyp.replace(dfl=1.0)  # the anchor loss has no DFL gain
    assert build_loss(models["anchor"], smoothed).hyp is smoothed.loss  # validated at load, not again
    assert isinstance(smoothed, Hyperparameters) and dict(smoothed) == smoothed.to_dict()


def test_train_py_stops_on_a_bad_hyp_file_before_writing_anything(tiny_data: Path, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, {**STILL_HYP, "lr0": "abc"}, "mine.yaml")
    project = tmp_path / "runs"
    argv = ["--cfg", "yolo11n.yaml", "--data", str(tiny_data), "--hyp", str(path), "--project", str(project)]
    assert train.main([*argv, "--imgsz", "64", "--workers", "0"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors == [f"error: {path}: 'lr0' must be a number, got 'abc'"]
    assert not project.exists()


def test_checkpoints_keep_a_plain_dict(overfit_run: Path) -> None:
    hyp = load_checkpoint(overfit_run / "weights" / "last.pt")["hyp"]
    assert type(hyp) is dict and hyp["lr0"] == STILL_HYP["lr0"] and hyp["dfl"] == STILL_HYP["dfl"]
    assert yaml.safe_load((overfit_run / "hyp.yaml").read_text()) == hyp
