"""What a YOLOv5 or ultralytics checkpoint holds, read through placeholders (utils/restricted_unpickler.py).

Their trainers pickle the model object itself (`ckpt["model"]` or `ckpt["ema"]`: a `DetectionModel` of their
classes). Read with the restricted unpickler, that object is a tree of inert `ForeignObject`s whose recorded
state is each module's `__dict__`; walking `_parameters`, `_buffers` and `_modules` in order gives the same
state dict `nn.Module.state_dict()` would, and the plain attributes give the config (`yaml`), class names and
strides. Nothing of theirs is imported or called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from utils.checkpoint import CheckpointError
from utils.restricted_unpickler import ForeignObject, load_restricted

# Module paths of the detection model classes each package pickles (yolov5 from its repository or the pip
# package; `Model` is YOLOv5's name before v6.2).
YOLOV5_MODEL_CLASSES = ("models.yolo.DetectionModel", "models.yolo.Model")
ULTRALYTICS_MODEL_CLASS = "ultralytics.nn.tasks.DetectionModel"


class ForeignCheckpointError(CheckpointError):
    """A file that is neither a checkpoint of this project nor a YOLOv5 / ultralytics detection checkpoint
    this project can import; the message names the file."""


@dataclass
class ForeignCheckpoint:
    """The parts of a YOLOv5 / ultralytics checkpoint an import needs, as plain data."""

    path: Path
    package: str  # "yolov5" or "ultralytics"
    model_class: str  # the pickled class, e.g. "ultralytics.nn.tasks.DetectionModel"
    yaml: dict[str, Any]  # their model config as they stored it (`model.yaml`)
    state: dict[str, torch.Tensor]  # their state dict, in their module order, as float32
    names: dict[int, str]
    stride: list[float]  # the model's strides (`model.stride`)
    anchors: torch.Tensor | None  # YOLOv5's Detect anchors (levels, anchors, 2) in grid units; None for YOLO11
    batchnorm_eps: list[float] = field(default_factory=list)  # per BatchNorm, in module order
    imgsz: int | None = None  # the training size, where the checkpoint records it

    config_name: str = ""  # the config file they built it from, e.g. "yolov5n.yaml", where recorded

    @property
    def description(self) -> str:
        stem = Path(self.config_name).stem
        return f"{self.package} {self.model_class.rsplit('.', 1)[-1]}" + (f" ({stem})" if stem else "")


def is_foreign_model(obj: Any) -> bool:
    """Whether `obj` is a placeholder for a YOLOv5 or ultralytics model object."""
    return isinstance(obj, ForeignObject) and _package_of(obj.foreign_name) is not None


def _package_of(class_name: str) -> str | None:
    if class_name.startswith("ultralytics."):
        return "ultralytics"
    if any(class_name == name or class_name.endswith("." + name) for name in YOLOV5_MODEL_CLASSES):
        return "yolov5"
    if class_name.startswith(("models.", "yolov5.models.")):
        return "yolov5"
    return None


def read_foreign_checkpoint(path: str | Path) -> ForeignCheckpoint:
    """Read a YOLOv5 / ultralytics checkpoint file (EMA weights preferred, as both packages do)."""
    path = Path(path)
    ckpt = load_restricted(path)
    neither = f"{path} is neither a checkpoint of this project nor a YOLOv5 / ultralytics one"
    if not isinstance(ckpt, dict):
        raise ForeignCheckpointError(f"{neither}: it holds a {_type_name(ckpt)}, not a checkpoint dict")
    candidates = [ckpt.get("ema"), ckpt.get("model")]
    model = next((m for m in candidates if isinstance(m, ForeignObject)), None)
    if model is None:
        raise ForeignCheckpointError(f"{neither}: no pickled model under 'model' or 'ema' (keys: {_keys(ckpt)})")
    package = _package_of(model.foreign_name)
    if package is None:
        raise ForeignCheckpointError(f"{neither}: its model is a {model.foreign_name}")
    if model.foreign_name.rsplit(".", 1)[-1] not in ("DetectionModel", "Model"):
        raise ForeignCheckpointError(
            f"{path}: holds a {package} {model.foreign_name.rsplit('.', 1)[-1]}; only their YOLO detection models "
            "(DetectionModel) import"
        )
    attributes = model.attributes
    config = attributes.get("yaml")
    if not isinstance(config, dict):
        raise ForeignCheckpointError(f"{path}: the {package} model carries no config ('yaml' attribute)")
    layers = _child(model, "model")
    head = _last_child(layers) if layers is not None else None
    if head is None:
        raise ForeignCheckpointError(f"{path}: the {package} model has no layer list ('model')")
    return ForeignCheckpoint(
        path=path,
        package=package,
        model_class=model.foreign_name,
        yaml=config,
        state=_state_of(model, path),
        names=_names(attributes.get("names"), config.get("nc")),
        stride=_floats(attributes.get("stride")),
        anchors=_mapping(head.attributes.get("_buffers")).get("anchors"),
        batchnorm_eps=[_eps(m) for _, m in _named_modules(model) if _is_batchnorm(m)],
        imgsz=_training_size(ckpt),
        config_name=str(config.get("yaml_file") or attributes.get("yaml_file") or ""),
    )


def _state_of(model: ForeignObject, path: Path) -> dict[str, torch.Tensor]:
    try:
        return module_state_dict(model)
    except ForeignCheckpointError as e:
        raise ForeignCheckpointError(f"{path}: {e}") from None


def module_state_dict(module: ForeignObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict of a placeholder `nn.Module` tree, in `nn.Module.state_dict()`'s order, as float32:
    each module's parameters, then its persistent buffers, then its children."""
    state: dict[str, torch.Tensor] = {}
    for name, child in _named_modules(module, prefix):
        attributes = child.attributes
        skipped = attributes.get("_non_persistent_buffers_set")
        skipped = skipped if isinstance(skipped, (set, frozenset)) else set()
        for kind in ("_parameters", "_buffers"):
            for key, tensor in _mapping(attributes.get(kind)).items():
                if isinstance(tensor, torch.Tensor) and not (kind == "_buffers" and key in skipped):
                    state[name + str(key)] = _as_float(tensor)
    return state


def _named_modules(module: ForeignObject, prefix: str = "") -> list[tuple[str, ForeignObject]]:
    """(key prefix, module) for the tree, parents first, children in order. A shared child is listed under each
    parent, as state_dict does (YOLOv5 shares one activation module); a module inside itself (a cycle, which a
    pickle can express) is an error."""
    found: list[tuple[str, ForeignObject]] = []
    stack: list[tuple[str, ForeignObject, frozenset[int]]] = [(prefix, module, frozenset())]
    while stack:
        name, current, ancestors = stack.pop()
        if id(current) in ancestors:
            raise ForeignCheckpointError(f"the pickled model contains itself at '{name}'")
        found.append((name, current))
        inside = ancestors | {id(current)}
        children = _mapping(current.attributes.get("_modules")).items()
        stack.extend(reversed([(f"{name}{k}.", c, inside) for k, c in children if isinstance(c, ForeignObject)]))
    return found


def _as_float(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    return tensor.float() if tensor.is_floating_point() else tensor.clone()


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _child(module: ForeignObject, name: str) -> ForeignObject | None:
    child = _mapping(module.attributes.get("_modules")).get(name)
    return child if isinstance(child, ForeignObject) else None


def _last_child(module: ForeignObject) -> ForeignObject | None:
    children = [c for c in _mapping(module.attributes.get("_modules")).values() if isinstance(c, ForeignObject)]
    return children[-1] if children else None


def _is_batchnorm(module: ForeignObject) -> bool:
    return module.foreign_name.startswith("torch.nn.modules.batchnorm.")


def _eps(norm: ForeignObject) -> float:
    eps = norm.attributes.get("eps", 1e-5)
    return float(eps) if isinstance(eps, (int, float)) else float("nan")  # nan: differs from ours, said so


def _names(value: Any, nc: Any) -> dict[int, str]:
    """Class names as a dict; YOLOv5 stores a list (a dict since v7), ultralytics a dict."""
    if isinstance(value, (list, tuple)):
        return {i: str(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        try:
            return {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            pass
    count = int(nc) if isinstance(nc, int) and nc > 0 else 0
    return {i: f"class{i}" for i in range(count)}


def _floats(value: Any) -> list[float]:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.flatten().tolist()]
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value if isinstance(v, (int, float))]
    return []


def _training_size(ckpt: dict[str, Any]) -> int | None:
    """The image size the run trained at: ultralytics' `train_args["imgsz"]`, YOLOv5's `opt["imgsz"]`."""
    for key in ("train_args", "opt"):
        args = ckpt.get(key)
        size = args.get("imgsz", args.get("img_size")) if isinstance(args, dict) else None
        if isinstance(size, (list, tuple)) and size:
            size = max(size)
        if isinstance(size, int) and size > 0:
            return size
    return None


def _type_name(value: Any) -> str:
    return value.foreign_name if isinstance(value, ForeignObject) else type(value).__name__


def _keys(ckpt: dict[str, Any]) -> str:
    return ", ".join(sorted(str(k) for k in ckpt)[:12]) or "none"
