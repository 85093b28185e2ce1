"""val.py end to end: a trained tiny model through .pt and ONNX, COCO JSON scored by pycocotools, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import val
from engine.export import export
from engine.val_run import ValOptions, run_val

WEIGHTS = "weights/best.pt"


@pytest.fixture(scope="module")
def onnx_weights(overfit_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (result,) = export(weights=str(overfit_run / WEIGHTS), include=["onnx"], imgsz=[96], dynamic=True)
    assert result.error is None, result.error
    return result.path


def test_val_end_to_end_with_coco_json(overfit_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = run_val(
        ValOptions(
            weights=str(overfit_run / WEIGHTS),
            data=str(tiny_data),
            imgsz=96,
            save_json=True,
            save_txt=True,
            project=str(tmp_path),
            workers=0,
            verbose=True,
        )
    )
    assert result.metrics["map50"] >= 0.9
    assert set(result.speed) == {"preprocess", "inference", "nms"}
    run = tmp_path / "exp"
    for name in (
        "confusion_matrix.png",
        "PR_curve.png",
        "F1_curve.png",
        "P_curve.png",
        "R_curve.png",
        "val_batch0_labels.jpg",
        "val_batch0_pred.jpg",
        "annotations.json",
        "best_predictions.json",
    ):
        assert (run / name).is_file(), name
    assert len(list((run / "labels").glob("*.txt"))) == 4
    assert json.loads((run / "best_predictions.json").read_text())
    # our metric and pycocotools agree on the same detections
    assert abs(result.coco["map50_95"] - result.metrics["map50_95"]) <= 0.005
    assert abs(result.coco["map50"] - result.metrics["map50"]) <= 0.005


def test_onnx_and_checkpoint_give_the_same_metrics(
    overfit_run: Path, onnx_weights: Path, tiny_data: Path, tmp_path: Path
) -> None:
    results = [
        run_val(
            ValOptions(weights=str(w), data=str(tiny_data), imgsz=96, plots=False, project=str(tmp_path), workers=0)
        ).metrics
        for w in (overfit_run / WEIGHTS, onnx_weights)
    ]
    for key in ("precision", "recall", "map50", "map50_95"):
        assert results[0][key] == pytest.approx(results[1][key], abs=1e-3), key


def test_speed_task(overfit_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    result = run_val(
        ValOptions(
            weights=str(overfit_run / WEIGHTS),
            data=str(tiny_data),
            imgsz=96,
            task="speed",
            project=str(tmp_path),
            workers=0,
        )
    )
    assert result.speed["inference"] > 0


def test_bad_inputs_fail_clearly(
    overfit_run: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    weights = str(overfit_run / WEIGHTS)
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    empty_split = tmp_path / "empty.yaml"
    (tmp_path / "no_images").mkdir()
    empty_split.write_text(f"path: {tmp_path}\ntrain: no_images\nval: no_images\nnames: {{0: a, 1: b}}\n")
    six_classes = tmp_path / "six" / "data.yaml"  # six classes (a label uses class 5); the model knows two
    for sub in ("images", "labels"):
        (tmp_path / "six" / sub).mkdir(parents=True)
    image = next((tiny_data.parent / "images" / "train").iterdir())
    (tmp_path / "six" / "images" / image.name).write_bytes(image.read_bytes())
    (tmp_path / "six" / "labels" / f"{image.stem}.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    six_classes.write_text("path: .\ntrain: images\nval: images\nnames: [a, b, c, d, e, f]\n")
    cases = [
        (["--weights", weights, "--data", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["--weights", str(not_a_checkpoint), "--data", str(tiny_data)], "notes.pt"),
        (["--weights", weights, "--data", str(empty_split)], "no_images"),
        (["--weights", weights, "--data", str(six_classes)], "best.pt has 2 classes (class0, class1) but"),
    ]
    for argv, expected in cases:
        code = val.main([*argv, "--imgsz", "96", "--project", str(tmp_path / "runs"), "--workers", "0"])
        output = capsys.readouterr()
        assert code == 2, argv
        assert expected in output.out + output.err, (argv, output.out[-500:])
