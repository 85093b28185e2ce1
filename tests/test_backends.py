"""One loader for .pt, .torchscript and .onnx: same detections after NMS, metadata read back, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import onnx
import pytest
import torch

from engine.export import export
from engine.formats import load_backend
from engine.predict import Predictor
from models.checkpoint_model import model_from_checkpoint
from models.detection_model import DetectionModel
from tests.engine_helpers import match_detections, shared_checkpoint, shared_exports, write_image
from utils.checkpoint import save_checkpoint
from utils.compare import relative_max_difference
from utils.torch_utils import select_device


@pytest.fixture(params=["yolov5n.yaml", "yolo11n.yaml"], ids=["yolov5n", "yolo11n"])
def exported(request) -> dict[str, Path]:
    """A checkpoint and its dynamic TorchScript and ONNX exports (made once per session)."""
    files = shared_exports(request.param)
    assert all(r.ok for r in files["results"]), [r.error for r in files["results"]]
    return {kind: files[kind] for kind in ("pt", "torchscript", "onnx")}


def test_same_detections_across_formats(exported: dict[str, Path], tmp_path: Path) -> None:
    image = cv2.imread(str(write_image(tmp_path / "a.jpg", 72, 112)))  # not square: rectangular letterbox
    detections = {}
    for kind, path in exported.items():
        predictor = Predictor(load_backend(path, "cpu"), imgsz=96, conf_thres=0.3)
        (detections[kind],), _ = predictor.predict([image], ["a.jpg"])
        assert predictor.last_input_shape == (64, 96)  # 72x112 -> 61x96 -> padded to a multiple of 32
    reference = detections["pt"]
    assert 0 < len(reference) < 1000
    assert set(reference.names.values()) == {"thing0", "thing1", "thing2"}
    for kind in ("torchscript", "onnx"):
        assert match_detections(reference, detections[kind]) == 1.0, kind


def test_metadata_round_trip(exported: dict[str, Path]) -> None:
    model = model_from_checkpoint(exported["pt"])
    for kind in ("torchscript", "onnx"):
        backend = load_backend(exported[kind], "cpu")
        assert backend.format == kind
        meta = backend.metadata
        assert meta.names == model.names
        assert meta.stride == int(model.stride.max())
        assert meta.has_objectness == model.head.has_objectness
        assert meta.imgsz == [64, 64] and meta.dynamic and meta.batch is None


def test_fixed_batch_export(tmp_path: Path) -> None:
    """A static export pads short batches and refuses other sizes, simplified (onnxslim) and in OpenVINO too."""
    weights = tmp_path / "best.pt"
    shutil.copy(shared_checkpoint("yolo11n.yaml"), weights)
    results = export(weights, ["onnx", "openvino"], imgsz=[64, 96], batch=2, simplify=True, latency_runs=1)
    onnx_result, openvino_result = results
    assert onnx_result.ok, onnx_result.error
    assert onnx_result.max_difference <= 1e-4
    backend = load_backend(onnx_result.path, "cpu")
    assert not backend.dynamic and backend.metadata.batch == 2 and backend.imgsz == [64, 96]
    images = torch.rand(3, 3, 64, 96)  # 3 = one full batch of 2 and one padded
    dynamic = load_backend(shared_exports("yolo11n.yaml")["onnx"], "cpu")  # checked against PyTorch itself
    assert relative_max_difference(dynamic(images), backend(images)) <= 1e-5
    with pytest.raises(ValueError, match="fixed input size 64x96"):
        backend(torch.rand(1, 3, 64, 64))
    predictor = Predictor(backend, imgsz=128)  # a fixed-size model overrides --imgsz, with a warning
    assert predictor.imgsz == (64, 96) and not predictor.rect

    assert openvino_result.ok, openvino_result.error
    openvino = load_backend(openvino_result.path, "cpu")
    assert not openvino.dynamic and openvino.metadata.batch == 2 and openvino.imgsz == [64, 96]
    assert relative_max_difference(dynamic(images), openvino(images)) <= 1e-4


def test_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    graph = onnx.load(str(shared_exports("yolo11n.yaml")["onnx"]))
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="lacks metadata"):
        load_backend(tmp_path / "m.onnx", "cpu")


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown weights format '.h5'"):
        load_backend(tmp_path / "model.h5", "cpu")
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_backend(tmp_path / "missing.onnx", "cpu")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="onnxruntime cannot load it"):
        load_backend(bad, "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--half needs a CUDA device"):
            load_backend(shared_checkpoint("yolo11n.yaml"), "cpu", half=True)


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid --device 'gpu7'"):
        select_device("gpu7")
    if not torch.cuda.is_available():
        for spec in ("0", "cuda:0", "0,1", 0):
            with pytest.raises(ValueError, match="CUDA is not available"):
                select_device(spec)
    else:
        assert select_device("cuda:0") == select_device(0) == torch.device("cuda:0")


def test_default_input_size_is_the_training_size(tmp_path: Path) -> None:
    """Without --imgsz, prediction and export use the size the checkpoint was trained at, as ultralytics does."""
    model = DetectionModel("yolov5n.yaml", nc=2)
    weights = save_checkpoint(tmp_path / "trained96.pt", model, train_args={"imgsz": 96, "data": "trees.yaml"})
    backend = load_backend(weights, "cpu")
    assert backend.default_imgsz == [96, 96]
    assert Predictor(backend).imgsz == (96, 96)
    assert Predictor(backend, imgsz=128).imgsz == (128, 128)  # an explicit size wins
    (result,) = export(weights, ["onnx"], latency_runs=1)
    assert result.ok, result.error
    assert load_backend(result.path, "cpu").default_imgsz == [96, 96]  # the export carries the size it was made at
    assert load_backend(save_checkpoint(tmp_path / "untrained.pt", model), "cpu").default_imgsz == [640, 640]
