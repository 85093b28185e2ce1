"""What an exported model carries besides its graph, so a loader needs nothing else to run it correctly.

Stored as TorchScript `_extra_files["metadata.json"]`, as ONNX `metadata_props` (one JSON-encoded value per
key) and as `metadata.json` beside an OpenVINO model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import torch.nn as nn

from models.heads.base import head_family
from utils.errors import UserError

METADATA_FORMAT = "yolo-export/1"


class ModelFileError(UserError, ValueError):
    """A weights or exported-model file that cannot be used (unknown format, missing or unreadable metadata);
    the message names the file."""


@dataclass
class ModelMetadata:
    """Facts about a detector that pre- and post-processing depend on."""

    names: dict[int, str]
    stride: int  # the largest head stride: input sides must be multiples of it
    head: str  # the head's family (models.heads.base.HEAD_FAMILIES): "anchor" (YOLOv5) or "dfl" (YOLO11)
    imgsz: list[int] | None = None  # (h, w) exported at; None for a PyTorch checkpoint
    batch: int | None = None  # fixed batch of a static export; None when any batch works
    dynamic: bool = True  # spatial size and batch may vary
    half: bool = False  # fp16 model (TorchScript, ONNX) or fp16 weights (OpenVINO)
    int8: bool = False  # quantized weights and activations (ONNX QDQ, OpenVINO via NNCF), the decode in float
    model: str = ""  # config file and scale, e.g. "yolo11.yaml (n)"
    data: dict[str, Any] | None = None  # the data set trained on (see training_data); None when not known
    format: str = METADATA_FORMAT
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def has_objectness(self) -> bool:
        return head_family(self.head).has_objectness

    @property
    def val_iou(self) -> float:
        """The NMS IoU that validation uses by default for this head family."""
        return head_family(self.head).val_iou

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def outputs_per_box(self) -> int:
        """Columns of the output: 4 box + 1 objectness (anchor head only) + nc class scores."""
        return 4 + int(self.has_objectness) + self.nc

    @classmethod
    def from_model(cls, model: nn.Module, **overrides: Any) -> ModelMetadata:
        """Read names, stride and head family off a DetectionModel."""
        raw = model.yaml
        name = str(raw.get("yaml_file", "model")) + (f" ({raw['scale']})" if raw.get("scale") else "")
        values: dict[str, Any] = {
            "names": {int(k): str(v) for k, v in model.names.items()},
            "stride": int(max(float(s) for s in model.stride)),
            "head": model.head.family,
            "model": name,
            "data": training_data(model),
        }
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_strings(self) -> dict[str, str]:
        """One JSON-encoded string per key (ONNX metadata_props hold strings only)."""
        return {k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "<metadata>") -> ModelMetadata:
        """Rebuild from a dict; missing required keys raise ModelFileError naming `source`."""
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("names", "stride", "head") if k not in values]
        if missing:
            raise ModelFileError(f"{source}: exported model lacks metadata {missing}; re-export it with export.py")
        if values.get("format", METADATA_FORMAT) != METADATA_FORMAT:
            raise ModelFileError(f"{source}: metadata format {values['format']!r}, expected {METADATA_FORMAT}")
        try:
            head_family(values["head"])
        except ValueError as e:
            raise ModelFileError(f"{source}: {e}") from None
        values = {k: v for k, v in values.items() if k in known}
        values["names"] = {int(k): str(v) for k, v in values["names"].items()}  # JSON keys are strings
        data = values.get("data")
        if data is not None:
            if not isinstance(data, dict) or not isinstance(data.get("names"), dict) or not data.get("name"):
                raise ModelFileError(f"{source}: metadata 'data' must hold the training data's name and names")
            values["data"] = {**data, "names": {int(k): str(v) for k, v in data["names"].items()}}
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<metadata>") -> ModelMetadata:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{source}: unreadable metadata ({e})") from None
        return cls.from_dict(values, source)

    @classmethod
    def from_strings(cls, values: dict[str, str], source: str = "<metadata>") -> ModelMetadata:
        try:
            decoded = {k: json.loads(v) for k, v in values.items() if k in {f.name for f in fields(cls)}}
        except json.JSONDecodeError as e:
            raise ModelFileError(f"{source}: unreadable metadata ({e})") from None
        return cls.from_dict(decoded, source)


def training_data(model: nn.Module) -> dict[str, Any] | None:
    """The data set a trained model learnt, from its training options: {"name": the data YAML as given to
    train.py, "nc", "names": its classes as the model learnt them, "single_cls"}; None for a model that was
    not trained here. With --single-cls the classes are the one merged class the model predicts."""
    train_args = getattr(model, "train_args", None) or {}
    if not train_args.get("data"):
        return None
    names = {int(k): str(v) for k, v in model.names.items()}
    return {
        "name": str(train_args["data"]),
        "nc": len(names),
        "names": names,
        "single_cls": bool(train_args.get("single_cls", False)),
    }
