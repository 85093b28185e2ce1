"""One callable per deployed format, each running a fixed input the way that format's runtime is used: ONNX Runtime
with thread spinning off (its idle threads would otherwise slow whatever runs next in this process), OpenVINO with
the same thread count as torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

Runner = Callable[[], object]


def torch_runner(model: torch.nn.Module, image: torch.Tensor) -> Runner:
    """Eager (or TorchScript) inference without autograd."""

    def run() -> object:
        with torch.inference_mode():
            return model(image)

    return run


def onnxruntime_runner(path: Path, image: torch.Tensor) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image.numpy().astype(np.float32)}
    return lambda: session.run(None, feed)


def openvino_runner(xml: Path, image: torch.Tensor) -> Runner:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": torch.get_num_threads()})
    request = compiled.create_infer_request()
    array = image.numpy()
    return lambda: request.infer([array])


def runner_for(path: Path, image: torch.Tensor) -> Runner:
    """The runner of an exported file or folder, by its name."""
    if path.suffix == ".onnx":
        return onnxruntime_runner(path, image)
    if path.suffix == ".torchscript":
        return torch_runner(torch.jit.load(str(path)).eval(), image)
    if path.is_dir():  # an OpenVINO export folder: <name>_openvino_model/<name>.xml
        return openvino_runner(next(path.glob("*.xml")), image)
    raise ValueError(f"no benchmark runner for {path}")
