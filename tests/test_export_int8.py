"""OpenVINO (fp32 and --half) and int8 (ONNX QDQ, OpenVINO NNCF) exports of a tiny trained model: round trips
against PyTorch, the decode left in floating point, the accuracy check and its failure path, detect.py and
val.py on the results, and --simplify (onnxslim) against the unsimplified graph.

The model is test_val_formats.py's tiny DFL detector trained on synthetic data (shared with that file when both
run in one process), so its detections are real and the agreement figures mean something.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch

from detect import main as detect_main
from engine.export import export
from engine.exporters.decode_scope import onnx_decode_nodes, openvino_decode_ops, prediction_weight_names
from engine.exporters.job import ExportJob
from engine.exporters.onnx import export_onnx
from engine.formats import load_backend
from engine.int8_check import detection_agreement
from engine.metadata import ModelMetadata
from engine.val_run import ValOptions, run_val
from export import main as export_main
from models.checkpoint_model import model_from_checkpoint
from models.detection_model import DetectionModel
from tests.engine_helpers import shared_checkpoint
from tests.helpers import write_config
from tests.test_val_formats import TINY_CONFIGS, format_case
from utils.compare import relative_max_difference
from utils.errors import OptionError

CALIBRATION = 4  # images: enough to calibrate a model this small, few enough to keep NNCF quick


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of the tiny trained DFL model's best.pt in a directory of its own, its data YAML)."""
    root = tmp_path_factory.mktemp("int8")
    case = format_case("dfl", 3, root)
    (root / "weights").mkdir()
    return Path(shutil.copy(case.pt, root / "weights" / "best.pt")), case.data


@pytest.fixture(scope="module")
def int8_exports(trained: tuple[Path, Path]) -> dict:
    """Both int8 formats exported once, with an unreachable bound that --accept-low-agreement lets pass."""
    weights, data = trained
    results = export(
        weights, ["onnx", "openvino"], int8=True, data=str(data), calib_images=CALIBRATION, min_agreement=1.01,
        accept_low_agreement=True, latency_runs=1,
    )  # fmt: skip
    return {r.format: r for r in results}


def test_openvino_half_on_cpu(trained: tuple[Path, Path]) -> None:
    """fp16 weights, run by the CPU plugin, within fp16's tolerance of PyTorch; metadata inside the IR directory.
    (The fp32 OpenVINO round trip is every format's: test_formats.py and test_backends.py.)"""
    weights, _ = trained
    model = model_from_checkpoint(weights)
    (half,) = export(weights, ["openvino"], half=True, device="cpu", latency_runs=1)
    assert half.ok, half.error
    assert half.path == weights.parent / "best_openvino_model"
    assert 1e-7 < half.max_difference <= 1e-2  # the fp16 rounding is there, within fp16's tolerance
    assert not weights.with_suffix(".onnx").exists()  # the ONNX it was converted from was an intermediate
    xml = next(half.path.glob("*.xml"))
    precisions = {e.get("element_type") for e in ElementTree.parse(xml).iter("data") if e.get("element_type")}
    assert "f16" in precisions, precisions
    backend = load_backend(half.path, "cpu")
    assert backend.format == "openvino" and backend.names == model.names and backend.imgsz == [64, 64]
    assert backend.stride == int(model.stride.max()) and backend.metadata.half and not backend.metadata.int8
    with pytest.raises(OptionError, match="needs a CUDA device .* for onnx"):  # ONNX fp16 still needs CUDA
        export(weights, ["openvino", "onnx"], half=True, device="cpu")


def _float_inputs_only(producers: dict[str, str], inputs: list[str], quantizer: str) -> bool:
    return all(producers.get(name) != quantizer for name in inputs)


def test_int8_exports_keep_the_decode_in_float(trained: tuple[Path, Path], int8_exports: dict, tmp_path: Path) -> None:
    """The decode's nodes, found in the fp32 graphs, read no quantized tensor in the int8 graphs."""
    weights, _ = trained
    model = model_from_checkpoint(weights).fuse().eval()
    decode_weights = prediction_weight_names(model)
    assert len(decode_weights) == 6  # a box and a class conv per level
    metadata = ModelMetadata.from_model(model, imgsz=[64, 64], dynamic=False)
    fp32_path = export_onnx(ExportJob(model, torch.zeros(1, 3, 64, 64), metadata, weights), tmp_path / "best.onnx")

    onnx_result = int8_exports["onnx"]
    assert onnx_result.ok and onnx_result.path == weights.parent / "best_int8.onnx", onnx_result.error
    graph = onnx.load(str(onnx_result.path)).graph
    kinds = [n.op_type for n in graph.node]
    assert kinds.count("QuantizeLinear") > 10 and kinds.count("DequantizeLinear") > 10
    producers = {out: n.op_type for n in graph.node for out in n.output}
    decode = set(onnx_decode_nodes(onnx.load(str(fp32_path)).graph, decode_weights))
    assert len(decode) > 10 and decode <= {n.name for n in graph.node}
    for node in graph.node:
        if node.name in decode:
            assert node.op_type not in ("QuantizeLinear", "DequantizeLinear")
            assert _float_inputs_only(producers, list(node.input), "DequantizeLinear"), node.name

    openvino_result = int8_exports["openvino"]
    assert openvino_result.ok and openvino_result.path == weights.parent / "best_int8_openvino_model"
    ir = ov.Core().read_model(next(openvino_result.path.glob("*.xml")))
    assert sum(op.get_type_name() == "FakeQuantize" for op in ir.get_ordered_ops()) > 10
    decode_ops = set(openvino_decode_ops(ov.convert_model(str(fp32_path)), decode_weights))
    assert len(decode_ops) > 10
    for op in ir.get_ordered_ops():
        if op.get_friendly_name() in decode_ops:
            sources = [i.get_source_output().get_node().get_type_name() for i in op.inputs()]
            assert "FakeQuantize" not in sources and op.get_type_name() != "FakeQuantize", op.get_friendly_name()

    for result in int8_exports.values():
        backend = load_backend(result.path, "cpu")  # kept: --accept-low-agreement let the 1.01 bound pass
        assert backend.metadata.int8 and backend.names == model.names
        assert 0.0 <= result.agreement <= 1.0  # measured against the fp32 model on the val split
        assert result.accuracy.reference_boxes == 16 and result.accuracy.fp32["map50"] > 0  # the val split's labels
        assert result.max_difference is not None  # recorded, not held to fp32's 1e-4


def test_int8_and_openvino_files_run_in_detect_and_val(
    trained: tuple[Path, Path], int8_exports: dict, tmp_path: Path
) -> None:
    weights, data = trained
    reference = run_val(ValOptions(weights=str(weights), data=str(data), plots=False, workers=0, project=str(tmp_path)))
    for result in int8_exports.values():
        metrics = run_val(
            ValOptions(weights=str(result.path), data=str(data), plots=False, workers=0, project=str(tmp_path))
        ).metrics
        assert metrics["map50"] > 0.5 * reference.metrics["map50"] > 0, (result.path, metrics, reference.metrics)
        images = data.parent / "images" / "train"
        argv = ["--weights", str(result.path), "--source", str(images), "--project", str(tmp_path / "detect")]
        assert detect_main(argv) == 0


def test_low_agreement_fails_in_one_line(
    trained: tuple[Path, Path], tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Below --min-agreement export.py ends with one line of figures and removes the file (the int8_exports
    fixture shows --accept-low-agreement keeping it)."""
    weights, data = Path(shutil.copy(trained[0], tmp_path / "best.pt")), trained[1]
    argv = ["--weights", str(weights), "--include", "onnx", "--int8", "--data", str(data), "--calib-images", "2"]
    argv += ["--min-agreement", "1.01"]  # more than any model can reach: the check must fail
    assert export_main(argv) == 2
    captured = capfd.readouterr()
    errors = [line for line in captured.err.splitlines() if "error" in line.lower()]  # stderr has val's progress bars
    assert len(errors) == 1 and captured.err.strip().endswith(errors[0]), captured.err[-1500:]
    assert errors[0].startswith("error: --min-agreement 1.01: best_int8.onnx: agreement "), errors[0]
    assert "mAP50 fp32 " in errors[0] and "int8 " in errors[0] and "--accept-low-agreement" in errors[0]
    assert "best_int8.onnx" in captured.out and "(fp32)" in captured.out  # the side-by-side table came first
    assert not weights.with_name("best_int8.onnx").exists()  # a file that failed its check is not left behind


def test_int8_option_errors(trained: tuple[Path, Path]) -> None:
    weights, data = trained
    with pytest.raises(OptionError, match="--int8: torchscript has no int8 export"):
        export(weights, ["onnx", "torchscript"], int8=True, data=str(data))
    with pytest.raises(OptionError, match="--half and --int8"):
        export(weights, ["openvino"], int8=True, half=True, data=str(data))
    with pytest.raises(OptionError, match="validates at one square size"):
        export(weights, ["onnx"], int8=True, data=str(data), imgsz=[64, 96])
    untrained = shared_checkpoint("yolo11n.yaml")  # records no training data
    with pytest.raises(OptionError, match="pass --data"):
        export(untrained, ["onnx"], int8=True, imgsz=64)


def test_simplify_keeps_the_outputs(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """onnxslim's graph is smaller and computes what the unsimplified one does (the yolo11n checkpoint is
    simplified in test_backends.py's fixed-batch export and checked against PyTorch there)."""
    model = model_from_checkpoint(trained[0]).fuse().eval()
    metadata = ModelMetadata.from_model(model, imgsz=[64, 64], dynamic=True)
    paths = {}
    for simplify in (False, True):
        job = ExportJob(model, torch.zeros(1, 3, 64, 64), metadata, tmp_path / "m.pt", dynamic=True, simplify=simplify)
        paths[simplify] = export_onnx(job, tmp_path / f"m_{simplify}.onnx")
    plain, slim = (onnx.load(str(paths[s])) for s in (False, True))
    assert len(slim.graph.node) < len(plain.graph.node)
    assert {p.key for p in slim.metadata_props} == {p.key for p in plain.metadata_props}
    sessions = [ort.InferenceSession(str(paths[s]), providers=["CPUExecutionProvider"]) for s in (False, True)]
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:
        images = np.random.default_rng(0).random(shape, dtype=np.float32)
        expected, simplified = (s.run(None, {"images": images})[0] for s in sessions)
        assert relative_max_difference(torch.from_numpy(expected), torch.from_numpy(simplified)) <= 1e-5, shape


def test_agreement_is_one_for_the_same_detections_and_falls_with_changes() -> None:
    """Scored against itself a model agrees exactly (one confidence threshold over the split: per-image top-N
    would rank one image's extra boxes above another's references); a lost or moved box lowers it."""
    generator = torch.Generator().manual_seed(0)

    def detections(count: int, scale: float) -> torch.Tensor:
        xy = torch.rand(count, 2, generator=generator) * 300
        wh = torch.rand(count, 2, generator=generator) * 40 + 10
        scores = torch.rand(count, 1, generator=generator) * scale  # the images' score ranges differ
        return torch.cat((xy, xy + wh, scores, torch.randint(0, 2, (count, 1), generator=generator)), 1)

    reference = {"a.jpg": detections(40, 0.2), "b.jpg": detections(30, 0.03)}
    names = {0: "a", 1: "b"}
    assert detection_agreement(reference, reference, names, objects=25) == (1.0, 25)
    assert detection_agreement(reference, reference, names, objects=500) == (1.0, 70)  # all there are
    strongest = int(reference["a.jpg"][:, 4].argmax())
    lost = {"a.jpg": reference["a.jpg"][torch.arange(40) != strongest], "b.jpg": reference["b.jpg"]}
    moved = {k: v.clone() for k, v in reference.items()}
    moved["a.jpg"][strongest, :4] += 200  # the most confident box lands where nothing is
    for changed in (lost, moved):
        agreement, boxes = detection_agreement(reference, changed, names, objects=25)
        assert boxes == 25 and 0.5 < agreement < 1.0
    agreement, boxes = detection_agreement({"a.jpg": torch.zeros(0, 6)}, reference, names, objects=25)
    assert boxes == 0 and agreement != agreement  # nothing to agree with: nan, which no bound accepts


@pytest.mark.parametrize("head", ["anchor", "dfl"])
def test_decode_scope_is_everything_after_the_prediction_convs(head: str, tmp_path: Path) -> None:
    """In both head families the decode found in the ONNX graph holds no conv but DFL's, the last node, the
    decode's sigmoids and the grid's constant builders; the network's convs and SiLUs stay outside. (The OpenVINO
    finder is exercised on the DFL head by the int8 tests above.)"""
    model = DetectionModel(write_config(tmp_path, f"{head}.yaml", TINY_CONFIGS[head])).eval().fuse()
    metadata = ModelMetadata.from_model(model, imgsz=[64, 64], dynamic=False)
    path = export_onnx(ExportJob(model, torch.zeros(1, 3, 64, 64), metadata, tmp_path / "m.pt"), tmp_path / "m.onnx")
    graph = onnx.load(str(path)).graph
    weights = prediction_weight_names(model)
    decode = set(onnx_decode_nodes(graph, weights))
    kinds = {n.name: n.op_type for n in graph.node}
    assert graph.node[-1].name in decode
    assert [kinds[name] for name in decode if kinds[name] == "Conv"] == (["Conv"] if head == "dfl" else [])
    convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1] in weights]
    assert len(convs) == len(weights) and not decode & {n.name for n in convs}
    sigmoids = {n.name for n in graph.node if n.op_type == "Sigmoid"}
    silu = {name for name in sigmoids if "/act/" in name}  # every Conv layer's SiLU, the head's branches' too
    assert silu and not silu & decode and sigmoids - silu <= decode  # the decode's own sigmoids are inside
    assert any(kinds[name] == "Expand" for name in decode)  # the grid, built from constants
    with_convs = set(onnx_decode_nodes(graph, weights, with_convs=True))
    assert with_convs == decode | {n.name for n in convs}
