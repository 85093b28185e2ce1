"""The model object (engine/model.py) and its Results (engine/results.py): train, val, predict, export on tiny
settings; stream=True is lazy; results round-trip through JSON; save_txt writes YOLO labels. Also the training log
habits it shows: the model summary at the start and one stdout line per epoch.

One tiny training (4 images at 64 px, one epoch) is shared by the module; the fine-tuning test trains one more.
"""

from __future__ import annotations

import contextlib
import io
import re
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import engine.detect
from engine.model import YOLO, ModelUseError, TrainRun
from engine.results import Results, ResultsError
from tests.synthetic_data import make_synthetic_dataset

IMGSZ = 64


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("object-data"), n_train=4, n_val=2, imgsz=IMGSZ, nc=2)


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[YOLO, TrainRun, str]:
    """YOLO('yolov5n.yaml') trained one epoch (options spelled as a yolov5/ultralytics user would); its stdout."""
    model = YOLO("yolov5n.yaml")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        run = model.train(
            data=str(data),
            img=IMGSZ,  # train.py's --img alias as a keyword
            batch=4,
            epochs=1,
            optimizer="sgd",  # any case, as ultralytics accepts it
            workers=0,
            noplots=True,
            cache="ram",
            project=str(tmp_path_factory.mktemp("object-runs")),
        )
    return model, run, stdout.getvalue()


def test_train_holds_the_best_weights_and_logs_summary_and_epoch_line(trained) -> None:
    model, run, stdout = trained
    assert run.weights == run.save_dir / "weights" / "best.pt" and run.weights.is_file()
    assert model.weights == run.weights and model.cfg is None and model.names == {0: "class0", 1: "class1"}
    assert set(run.metrics) >= {"precision", "recall", "map50", "map50_95"}
    args = yaml.safe_load((run.save_dir / "args.yaml").read_text())
    assert (args["optimizer"], args["imgsz"], args["batch_size"]) == ("SGD", IMGSZ, 4)
    # the summary, as `python models/yolo.py` prints it, before the first epoch
    summary = re.search(r"yolov5\.yaml \(n\) summary: \d+ layers, [\d,]+ parameters, [\d.]+ GFLOPs", stdout)
    epoch = re.search(
        r"^epoch 1/1: train box \S+ obj \S+ cls \S+ \| P \S+ R \S+ mAP50 \S+ mAP50-95 \S+ \| val box \S+ obj \S+ "
        r"cls \S+ \| lr \S+ \| [\d.]+s$",
        stdout,
        re.MULTILINE,
    )
    assert summary and epoch and summary.start() < epoch.start(), stdout
    csv_row = (run.save_dir / "results.csv").read_text().splitlines()[1].split(",")
    assert float(epoch.group(0).split()[4]) == pytest.approx(float(csv_row[1]), rel=1e-3)  # box loss, as logged
    assert "Instances       Size" not in stdout  # the bar's header goes to stderr with the bar


def test_val_prints_per_class_rows_by_default(trained, data: Path, tmp_path: Path) -> None:
    model, run, _ = trained
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = model.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), plots=False)
    assert set(result.metrics) >= {"map50", "map50_95"}
    assert re.search(r"^\s+class0\s+2\s+\d+", stdout.getvalue(), re.MULTILINE), stdout.getvalue()
    with contextlib.redirect_stdout(io.StringIO()) as quiet:
        model.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), plots=False, verbose=False)
    assert "class0" not in quiet.getvalue()


def test_predict_stream_is_lazy_and_results_carry_boxes(trained, data: Path, monkeypatch) -> None:
    model, _, _ = trained
    calls = []
    predict = engine.detect.Predictor.predict
    monkeypatch.setattr(engine.detect.Predictor, "predict", lambda self, *a: calls.append(1) or predict(self, *a))
    images = sorted((data.parent / "images" / "val").glob("*.png"))
    stream = model.predict([str(p) for p in images], stream=True, conf=0.001, imgsz=IMGSZ)
    assert isinstance(stream, types.GeneratorType) and not calls  # nothing runs until a frame is asked for
    first = next(stream)
    assert len(calls) == 1
    rest = list(stream)
    listed = model.predict([str(p) for p in images], conf=0.001, imgsz=IMGSZ)
    assert isinstance(listed, list) and len(listed) == 1 + len(rest) == len(images)
    for result, path in zip([first, *rest], images):
        image = cv2.imread(str(path))
        boxes = result.boxes
        assert result.path == str(path) and np.array_equal(result.orig_img, image) and result.names == model.names
        assert len(boxes) > 0 and isinstance(boxes.xyxy, torch.Tensor) and boxes.xyxy.shape == (len(boxes), 4)
        assert boxes.conf.min() >= 0.001 and set(boxes.cls.tolist()) <= {0.0, 1.0}
        h, w = image.shape[:2]
        xywhn = boxes.xywhn
        assert torch.allclose(xywhn[:, 0] * w, (boxes.xyxy[:, 0] + boxes.xyxy[:, 2]) / 2)
        assert torch.allclose(xywhn[:, 3] * h, boxes.xyxy[:, 3] - boxes.xyxy[:, 1])
        assert set(result.speed) == {"preprocess", "inference", "postprocess"} and result.speed["inference"] > 0
    assert torch.equal(listed[0].boxes.data, first.boxes.data)  # stream and list: the same detections


def test_results_round_trip_through_json_and_save_txt(trained, data: Path, tmp_path: Path) -> None:
    model, _, _ = trained
    image = next((data.parent / "images" / "val").glob("*.png"))
    (result,) = model.predict(str(image), conf=0.001, imgsz=IMGSZ)
    assert len(result) > 0
    back = Results.from_json(result.to_json())
    assert torch.equal(back.boxes.data, result.boxes.data)  # float32 values survive exactly
    assert (back.path, back.orig_shape, back.names, back.speed) == (
        result.path,
        result.orig_shape,
        result.names,
        result.speed,
    )
    assert back.to_json() == result.to_json()
    with pytest.raises(ResultsError, match="no image to draw on"):
        back.plot()
    with pytest.raises(ResultsError, match="not the JSON of Results.to_json"):
        Results.from_json('{"detections": []}')

    labels = Path(result.save_txt(tmp_path / "labels.txt"))
    rows = [line.split() for line in labels.read_text().splitlines()]
    assert len(rows) == len(result) and all(len(row) == 5 for row in rows)
    np.testing.assert_allclose(np.array(rows, float)[:, 1:], result.boxes.xywhn.numpy(), atol=1e-6)
    assert [int(row[0]) for row in rows] == result.boxes.cls.int().tolist()
    result.save_txt(tmp_path / "with_conf.txt", save_conf=True)
    with_conf = np.loadtxt(tmp_path / "with_conf.txt", ndmin=2)
    np.testing.assert_allclose(with_conf[:, 5], result.boxes.conf.numpy(), atol=1e-6)

    plotted = result.plot()
    assert plotted.shape == result.orig_img.shape and not np.array_equal(plotted, result.orig_img)
    saved = cv2.imread(result.save(tmp_path / "annotated.png"))
    assert np.array_equal(saved, plotted)


def test_export_then_the_exported_model_predicts_but_cannot_train(trained, data: Path) -> None:
    model, _, _ = trained
    onnx = model.export(format="onnx", imgsz=IMGSZ)
    assert onnx == model.weights.with_suffix(".onnx") and onnx.is_file()
    exported = YOLO(onnx)
    assert exported.format == "onnx" and exported.names == model.names and exported.model is None
    image = next((data.parent / "images" / "val").glob("*.png"))
    (from_onnx,) = exported.predict(str(image), conf=0.001)
    (from_pt,) = model.predict(str(image), conf=0.001, imgsz=IMGSZ)
    assert len(from_onnx) > 0 and torch.allclose(from_onnx.boxes.conf.max(), from_pt.boxes.conf.max(), atol=1e-4)
    with pytest.raises(ModelUseError, match=r"best\.onnx is an exported onnx model and cannot train"):
        exported.train(data=str(data))
    with pytest.raises(ModelUseError, match="export from its .pt"):
        exported.export(format="torchscript")
    with pytest.raises(ModelUseError, match="config without weights"):
        YOLO("yolov5n.yaml").export()


def test_fine_tune_from_the_checkpoint_on_other_classes(trained, tmp_path: Path) -> None:
    """YOLO('best.pt').train(data with 3 classes): the checkpoint's architecture, its tensors transferred, the
    head rebuilt for 3 classes; fuse() and info() on the result."""
    model, run, _ = trained
    three = make_synthetic_dataset(tmp_path / "three", n_train=4, n_val=2, imgsz=IMGSZ, nc=3, seed=1)
    tuned = YOLO(run.weights)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        tuned_run = tuned.train(
            data=str(three),
            imgsz=IMGSZ,
            batch_size=4,
            epochs=1,
            workers=0,
            noplots=True,
            project=str(tmp_path / "runs"),
        )
    transferred = re.search(rf"Transferred (\d+)/(\d+) tensors from {re.escape(str(run.weights))}", stdout.getvalue())
    assert transferred, stdout.getvalue()
    # everything but the weight and bias of the head's three output convolutions, whose shapes follow nc
    assert int(transferred.group(1)) == int(transferred.group(2)) - 6 == len(model.model.state_dict()) - 6
    assert tuned.model.nc == 3 and tuned.weights == tuned_run.weights != run.weights
    assert yaml.safe_load((tuned_run.save_dir / "args.yaml").read_text())["weights"] == str(run.weights)
    info = tuned.info()
    assert info.parameters == sum(p.numel() for p in tuned.model.parameters()) and info.gflops > 0
    assert tuned.fuse().info().parameters < info.parameters  # BatchNorms folded
