"""The model object, in the manner of ultralytics' `YOLO`: one object that trains, validates, predicts and exports.

    from engine.model import YOLO

    model = YOLO("yolo11n.yaml")                  # a config (untrained), a checkpoint best.pt, an export best.onnx
    run = model.train(data="trees.yaml", epochs=3, imgsz=320)   # train.py's options; the model now holds best.pt
    metrics = model.val()                         # val.py's options
    for r in model.predict("video.mp4", stream=True):           # detect.py's options; one Results per frame
        print(r.boxes.xyxy, r.boxes.conf, r.boxes.cls, r.speed)
    onnx_path = model.export(format="onnx")       # export.py's options

It adds no engine of its own: `train` runs the Trainer train.py runs, `val` val.py's `run_val`, `predict` the
frame loop of detect.py (`DetectStream`), `export` export.py's `export`; files load through the same loaders
(`engine.formats`, `models.checkpoint_model`). Keyword options are the scripts' option names (or their flag
aliases: `img=`, `batch=`, `conf=`, `iou=`), checked as the command line checks them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.backends import Backend, PyTorchBackend
from engine.detect import DetectStream
from engine.export import ExportError, export
from engine.export_options import ExportOptions
from engine.formats import load_backend, weights_format
from engine.predict_options import PredictOptions
from engine.results import Results
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from engine.val_options import ValOptions
from engine.val_run import run_val
from engine.validator import ValidationResult
from models.checkpoint_model import model_from_checkpoint
from models.detection_model import DetectionModel
from models.summary import count_parameters, layer_table, remembered_gflops
from utils.errors import UserError
from utils.logging import LOGGER
from utils.options import options_from_keywords
from utils.torch_utils import select_device

CONFIG_SUFFIXES = (".yaml", ".yml")


class ModelUseError(UserError, ValueError):
    """Something the loaded model cannot do (train or export an exported file, export an untrained config)."""


@dataclass
class TrainRun:
    """What `YOLO.train` produced: the run directory, the weights the model now holds, their final metrics."""

    save_dir: Path
    weights: Path
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelInfo:
    """`YOLO.info()`: modules, parameters and GFLOPs at 640 (None where thop cannot count)."""

    layers: int
    parameters: int
    gflops: float | None


class _ModelTrainer(Trainer):
    """The Trainer, building a new run's model from the object's own architecture (a checkpoint may come from a
    config file that is not under cfg/, or from another framework's file); --weights then transfers its tensors."""

    def __init__(self, options: TrainOptions, architecture: dict[str, Any]) -> None:
        super().__init__(options)
        self.architecture = architecture

    def model_config(self) -> dict[str, Any]:
        return self.architecture


class YOLO:
    """A detector from a model config (`.yaml`), a checkpoint (`.pt`) or an exported file (`.onnx`,
    `.torchscript`, `*_openvino_model/`).

    `model` is the DetectionModel (None for exported files, which only validate and predict); `weights` the file
    it came from or was last trained into (None for a config not yet trained).
    """

    def __init__(self, model: str | Path = "yolo11n.yaml") -> None:
        self.source = str(model)
        self.cfg: str | None = None
        self.weights: Path | None = None
        self.model: DetectionModel | None = None
        self._exported: Backend | None = None  # an exported file's backend (not a PyTorch model)
        self._backends: dict[tuple[str, bool], Backend] = {}  # per (device, half), until the model changes
        if self.source.lower().endswith(CONFIG_SUFFIXES):
            self.cfg = self.source
            self.model = DetectionModel(self.source)
        elif weights_format(self.source).name == "pytorch":
            self.weights = Path(self.source)
            self._load_checkpoint(self.weights)
        else:
            self.weights = Path(self.source)
            self._exported = load_backend(self.weights)
            self._backends[(str(self._exported.device), False)] = self._exported

    # ------------------------------------------------------------------ what it is
    @property
    def names(self) -> dict[int, str]:
        return dict(self.model.names) if self.model is not None else dict(self._exported.names)

    @property
    def format(self) -> str:
        """`pytorch` for configs and checkpoints, else the exported file's format."""
        return self._exported.format if self._exported is not None else "pytorch"

    def __repr__(self) -> str:
        return f"YOLO({self.source!r}, format={self.format}, classes={len(self.names)})"

    def info(self, detailed: bool = False) -> ModelInfo | None:
        """Log the summary line (and with `detailed` the layer table); returns the figures. Exported files log
        their format, classes and input size and return None."""
        if self.model is None:
            b = self._exported
            size = "any size" if b.dynamic or not b.imgsz else f"{b.imgsz[0]}x{b.imgsz[1]}"
            LOGGER.info(f"{b.format} model {b.path}: {len(b.names)} classes, input {size}, {b.metadata.head} head")
            return None
        info = ModelInfo(
            len(list(self.model.modules())), count_parameters(self.model), remembered_gflops(self.model, 640)
        )
        if detailed:
            LOGGER.info(layer_table(self.model.model, self.model.records))
        flops = f", {info.gflops:.1f} GFLOPs" if info.gflops is not None else ""
        LOGGER.info(f"{Path(self.source).name} summary: {info.layers} layers, {info.parameters:,} parameters{flops}")
        return info

    def fuse(self) -> YOLO:
        """Fold BatchNorms and re-parameterize the model in place (outputs unchanged); exported files are fused
        already. Returns the object."""
        if self.model is not None:
            self.model.eval().fuse()
            self._backends.clear()
        return self

    # ------------------------------------------------------------------ what it does
    def train(self, **options: Any) -> TrainRun:
        """Train with train.py's options; afterwards the object holds the run's best weights.

        From a config the run builds that config; from a checkpoint it fine-tunes: the same architecture with
        every tensor of matching shape transferred (the head re-initialised when the data's classes differ)."""
        if self._exported is not None:
            raise ModelUseError(
                f"{self.source} is an exported {self.format} model and cannot train: load the .pt checkpoint it was "
                f"exported from, or a .yaml config"
            )
        values = dict(options)
        if self.cfg is not None:
            values.setdefault("cfg", self.cfg)
        train_options = options_from_keywords(TrainOptions, values, "YOLO.train()")
        if self.weights is not None and "cfg" not in values and not train_options.resume:
            # fine-tune: this checkpoint's architecture, its tensors transferred; args.yaml names where it came from
            train_options = replace(
                train_options,
                cfg=str(self.model.train_args.get("cfg") or self.weights),
                weights=train_options.weights or str(self.weights),
            )
            trainer: Trainer = _ModelTrainer(train_options, self.model.yaml)
        else:
            trainer = Trainer(train_options)
        save_dir = trainer.train()
        best = save_dir / "weights" / "best.pt"
        self.weights = best if best.exists() else save_dir / "weights" / "last.pt"
        self.cfg = None
        self._load_checkpoint(self.weights)
        return TrainRun(save_dir, self.weights, dict(trainer.metrics))

    def val(self, **options: Any) -> ValidationResult:
        """Validate with val.py's options (default data: the data the model was trained on); the metrics."""
        val_options = options_from_keywords(ValOptions, options, "YOLO.val()")
        return run_val(val_options, self._backend(val_options.device, val_options.half))

    def predict(
        self,
        source: str | Path | int | np.ndarray | Sequence | None = None,
        stream: bool = False,
        save: bool = False,
        **options: Any,
    ) -> list[Results] | Iterator[Results]:
        """Detect with detect.py's options; one Results per image or video frame, in the source's order.

        `stream=True` returns a generator that runs each frame when asked for it, so a long video holds one frame at
        a time; otherwise a list. `save=True` writes annotated images and videos as detect.py does (to
        runs/detect/exp...); label files and crops with `save_txt`, `save_crop`."""
        values = {"nosave": not save, **options}
        if source is not None:
            values["source"] = source
        predict_options = options_from_keywords(PredictOptions, values, "YOLO.predict()")
        if predict_options.weights is None and self.weights is not None:
            predict_options = replace(predict_options, weights=str(self.weights))  # only recorded: the model runs
        results = _results(DetectStream(predict_options, self._backend(predict_options.device, predict_options.half)))
        return results if stream else list(results)

    __call__ = predict

    def export(self, format: str = "onnx", **options: Any) -> Path:
        """Export with export.py's options to one format; the written file (or directory), checked against
        PyTorch as export.py checks it."""
        if self._exported is not None:
            raise ModelUseError(f"{self.source} is an exported {self.format} model: export from its .pt checkpoint")
        if self.weights is None:
            raise ModelUseError(
                f"{self.source} is a config without weights: train it first (model.train(...)) or load a .pt"
            )
        values = {"include": [format], "weights": str(self.weights), **options}
        (result,) = export(**vars(options_from_keywords(ExportOptions, values, "YOLO.export()")))
        if not result.ok:
            raise ExportError(f"{format} export of {self.weights} failed: {result.error}")
        return result.path

    # ------------------------------------------------------------------ internals
    def _load_checkpoint(self, path: Path) -> None:
        self.model = model_from_checkpoint(path)
        self._backends.clear()

    def _backend(self, device: str, half: bool) -> Backend:
        """The backend predict and val run: the model in memory (fused copy), or the exported file, per device."""
        key = (str(select_device(device)), half)
        if key not in self._backends:
            if self.model is not None:
                self._backends[key] = PyTorchBackend(self.weights, self.model, select_device(device), half)
            else:
                self._backends[key] = load_backend(self.weights, device, half)
        return self._backends[key]


def _results(stream: DetectStream) -> Iterator[Results]:
    """One Results per frame of the stream, made as the frame is reached."""
    for prediction in stream:
        yield Results.from_detections(prediction.result, prediction.frame.image, prediction.timings)
