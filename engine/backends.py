"""The backends that run a detector in each weights format: `.pt` checkpoints, `.torchscript`, `.onnx`
(onnxruntime) and OpenVINO. Which one loads a given file is the format table's business (engine/formats.py:
`weights_format`, `load_backend`).

Every backend takes the same input, a float tensor (batch, 3, h, w) of RGB values in [0, 1], and returns the
same output, float32 (batch, anchors, 4 + [1] + nc): xywh boxes in input pixels, objectness (anchor head
only), class probabilities. Pre- and post-processing (engine/predict.py, val.py) are therefore shared, and a
model gives the same detections whatever format it runs in.
"""

from __future__ import annotations

import copy
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from engine.metadata import ModelFileError, ModelMetadata
from models.checkpoint_model import model_from_checkpoint
from utils.errors import OptionError

DEFAULT_IMGSZ = 640  # for models that carry no size of their own (a DetectionModel built in memory)


class Backend(ABC):
    """A loaded detector in some format; call it on a (batch, 3, h, w) float tensor in [0, 1]."""

    format: str = ""

    def __init__(self, path: Path | None, metadata: ModelMetadata, device: torch.device, fp16: bool) -> None:
        self.path = path
        self.metadata = metadata
        self.device = device
        self.fp16 = fp16
        self.train_args: dict[str, Any] = {}  # options of the training run, where the file keeps them (.pt)
        if fp16 and device.type != "cuda":
            raise OptionError(f"{path}: half-precision (fp16) models run on CUDA only; this device is {device}")

    @property
    def names(self) -> dict[int, str]:
        return self.metadata.names

    @property
    def stride(self) -> int:
        """The largest head stride; input sides must be multiples of it."""
        return self.metadata.stride

    @property
    def has_objectness(self) -> bool:
        """Column 4 of the output is objectness (anchor head): what NMS needs to score boxes."""
        return self.metadata.has_objectness

    @property
    def dynamic(self) -> bool:
        """Any batch and any stride-multiple input size work (PyTorch, and exports made with --dynamic)."""
        return self.metadata.dynamic

    @property
    def imgsz(self) -> list[int] | None:
        """(h, w) the model was exported at; None for a PyTorch checkpoint."""
        return self.metadata.imgsz

    @property
    def default_imgsz(self) -> list[int]:
        """The input size to use when none is asked for: the export's, else the training run's, else 640."""
        if self.imgsz:
            return list(self.imgsz)
        trained = int(self.train_args.get("imgsz") or DEFAULT_IMGSZ)
        return [trained, trained]

    @classmethod
    def load(cls, path: Path, device: torch.device, half: bool = False) -> Backend:
        """Load `path` (the format table's `load_backend` calls this). `half` is for checkpoints, which can run
        in either precision; an exported file runs in the precision it was exported in."""
        return cls(path, device)

    @abstractmethod
    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Run the model on a batch it accepts as it is."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Decoded predictions, float32 on this backend's device. A fixed-batch export gets padded batches."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.path}: expected images of shape (batch, 3, h, w), got {tuple(images.shape)}")
        size = list(images.shape[2:])
        if not self.dynamic and self.imgsz is not None and size != list(self.imgsz):
            raise OptionError(
                f"{self.path} was exported with a fixed input size {self.imgsz[0]}x{self.imgsz[1]}; got "
                f"{size[0]}x{size[1]}. Use --imgsz {self.imgsz[0]} or re-export with --dynamic"
            )
        images = images.to(self.device, torch.float16 if self.fp16 else torch.float32)
        fixed_batch = None if self.dynamic else self.metadata.batch
        if fixed_batch:
            outputs = []
            for chunk in images.split(fixed_batch):
                count = chunk.shape[0]
                if count < fixed_batch:  # pad to the exported batch; the padding's outputs are dropped
                    chunk = torch.cat((chunk, chunk.new_zeros((fixed_batch - count, *chunk.shape[1:]))))
                outputs.append(self.infer(chunk)[:count])
            output = torch.cat(outputs)
        else:
            output = self.infer(images)
        if output.ndim != 3 or output.shape[-1] != self.metadata.outputs_per_box:
            raise ValueError(
                f"{self.path}: output shape {tuple(output.shape)} does not match (batch, anchors, "
                f"{self.metadata.outputs_per_box}) for {self.metadata.nc} classes, head '{self.metadata.head}'"
            )
        return output.float()

    def warmup(self, imgsz: tuple[int, int]) -> None:
        """One run on zeros so the first real frame's latency is not the start-up cost."""
        self(torch.zeros(self.metadata.batch or 1, 3, *imgsz, device=self.device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path}, device={self.device}, fp16={self.fp16})"


class PyTorchBackend(Backend):
    """A checkpoint of this project, rebuilt from its config, fused, in eval mode.

    A model passed in memory is copied before fusing, so the caller's model (perhaps still training) is untouched.
    """

    format = "pytorch"

    def __init__(
        self, path: Path | None, model: nn.Module, device: torch.device, fp16: bool = False, owned: bool = False
    ) -> None:
        super().__init__(path, ModelMetadata.from_model(model), device, fp16)
        model = model if owned else copy.deepcopy(model)
        model = model.eval().fuse() if hasattr(model, "fuse") else model.eval()
        self.model = model.to(device).half() if fp16 else model.to(device).float()
        self.train_args = dict(getattr(model, "train_args", {}))

    @classmethod
    def load(cls, path: Path, device: torch.device, half: bool = False) -> PyTorchBackend:
        return cls(path, model_from_checkpoint(path), device, half, owned=True)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(images)


class TorchScriptBackend(Backend):
    """A traced module written by export.py; metadata in `_extra_files["metadata.json"]`, precision as exported."""

    format = "torchscript"

    def __init__(self, path: Path, device: torch.device) -> None:
        extra = {"metadata.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 flags TorchScript as deprecated
            try:  # TorchScript's own unpickler: it builds torch types only, never calls a Python function
                module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
            except RuntimeError as e:  # a foreign or damaged file: one line, not torch's paragraph
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ModelFileError(f"{path}: not a TorchScript model ({reason})") from None
        metadata = ModelMetadata.from_json(extra["metadata.json"] or "{}", str(path))
        super().__init__(path, metadata, device, metadata.half)
        self.model = module.eval()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(images)


class OnnxBackend(Backend):
    """An ONNX file run by onnxruntime (CUDA provider when on a GPU and installed, else CPU), precision as exported."""

    format = "onnx"

    def __init__(self, path: Path, device: torch.device) -> None:
        import onnxruntime as ort  # this format's package, imported by its backend only (load_backend checks it)

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # one knob (OMP_NUM_THREADS) for torch and ORT
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for unreadable files
            raise ModelFileError(f"{path}: onnxruntime cannot load it ({type(e).__name__}: {e})") from None
        metadata = ModelMetadata.from_strings(self.session.get_modelmeta().custom_metadata_map, str(path))
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        # fp16 tensors are handed over as numpy, so the CPU provider may run them; only torch ops need CUDA.
        super().__init__(path, metadata, device, fp16=False)
        self.providers = self.session.get_providers()

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().numpy().astype(self.input_dtype, copy=False)
        output = self.session.run([self.output_name], {self.input_name: array})[0]
        return torch.from_numpy(output.astype(np.float32, copy=False)).to(self.device)


class OpenVINOBackend(Backend):
    """An OpenVINO IR directory (`*_openvino_model/` with the .xml, .bin and metadata.json)."""

    format = "openvino"

    def __init__(self, path: Path, device: torch.device) -> None:
        import openvino as ov  # this format's package, imported by its backend only (load_backend checks it)

        xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None)
        if xml is None or not (xml.parent / "metadata.json").is_file():
            raise ModelFileError(
                f"{path}: expected an OpenVINO .xml with metadata.json beside it (written by export.py)"
            )
        metadata = ModelMetadata.from_json((xml.parent / "metadata.json").read_text(), str(xml))
        super().__init__(xml, metadata, torch.device("cpu"), fp16=False)
        threads = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}  # one knob (OMP_NUM_THREADS), as for ORT
        self.compiled = ov.Core().compile_model(str(xml), "CPU", threads)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        output = self.compiled(images.detach().cpu().numpy())[self.compiled.output(0)]
        return torch.from_numpy(np.asarray(output, dtype=np.float32))
