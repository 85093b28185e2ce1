"""A YOLOv5 or ultralytics checkpoint as a model of this project: matching config, tensors mapped, verified.

Their config rows (`[from, number, module, args]`) must equal those of a config under cfg/ (yolov5.yaml for
YOLOv5 v6+, yolo11.yaml for YOLO11): that is the architecture we build, at their depth and width multiples and
class count. Their state dict then maps onto ours by order and shape (our layers equal theirs one for one; only
the key names differ, e.g. `cv2`/`cv3` are our `box_convs`/`cls_convs`), with two known differences: our heads
keep their strides as a buffer (checked against theirs), and YOLOv5 stores anchors in grid units where ours are
in pixels. Every tensor must find its counterpart, or the import fails naming the first that did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.config import available_configs, read_yaml
from models.detection_model import DetectionModel
from models.foreign_checkpoint import ForeignCheckpoint, ForeignCheckpointError, read_foreign_checkpoint
from utils.checkpoint import CHECKPOINT_FORMAT, model_state
from utils.logging import LOGGER


class UnsupportedArchitectureError(ForeignCheckpointError):
    """A YOLOv5 / ultralytics model whose layers no config of this project reproduces."""


@dataclass
class ImportReport:
    """What an import loaded: tensors mapped, and any of theirs or ours left without a counterpart."""

    source: str  # e.g. "yolov5 DetectionModel"
    config: str  # our config and scale, e.g. "yolo11.yaml (n)"
    loaded: int = 0  # every tensor of ours but the head's strides, which the config gives (checked against theirs)
    unmatched: list[str] = field(default_factory=list)

    def summary(self, path: Path) -> str:
        missing = "; unmatched: " + ", ".join(self.unmatched[:5]) if self.unmatched else "; nothing unmatched"
        more = f" (+{len(self.unmatched) - 5} more)" if len(self.unmatched) > 5 else ""
        return f"Imported {path} ({self.source}) as {self.config}: {self.loaded} tensors loaded{missing}{more}"


def import_foreign_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict in this project's format (utils/checkpoint.py) holding the imported model: what
    `model_from_checkpoint` and `--weights` read, and what tools/convert_weights.py writes. Logs the report."""
    foreign = read_foreign_checkpoint(path)
    model, report = foreign_to_model(foreign)
    LOGGER.info(report.summary(foreign.path))
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        **model_state(model),
        "imported_from": f"{foreign.path.name} ({report.source})",
    }
    if foreign.imgsz:
        ckpt["train_args"] = {"imgsz": foreign.imgsz}  # inference defaults to the training size, as for ours
    return ckpt


def foreign_to_model(foreign: ForeignCheckpoint) -> tuple[DetectionModel, ImportReport]:
    """Our model built from the config matching theirs, with their weights; raises when any tensor has no match."""
    config_path, config = matching_config(foreign)
    # a model saved after their fuse() has no BatchNorm left: ours is then built in its fused form, which matches
    model = DetectionModel(config, in_channels=_input_channels(foreign.yaml), fused=not foreign.batchnorm_eps)
    model.names = dict(foreign.names) if len(foreign.names) == model.nc else model.names
    report = ImportReport(
        source=foreign.description,
        config=config_path.name + (f" ({config['scale']})" if config.get("scale") else ""),
    )
    load_mapped_state(model, foreign, report)
    _check_strides(model, foreign)
    _check_batchnorm_eps(model, foreign)
    return model.float().eval(), report


def matching_config(foreign: ForeignCheckpoint) -> tuple[Path, dict[str, Any]]:
    """The config under cfg/ whose rows equal theirs, set to their class count, multiples and anchors."""
    theirs = _rows(foreign.yaml)
    closest: tuple[int, Path | None, str] = (-1, None, "")
    for path in available_configs():
        ours = read_yaml(path)
        if not isinstance(ours, dict):
            continue
        rows = _rows(ours)
        if rows == theirs:
            return path, _configured(path, ours, foreign)
        same = next((i for i, (a, b) in enumerate(zip(rows, theirs)) if a != b), min(len(rows), len(theirs)))
        if same > closest[0]:
            row = theirs[same] if same < len(theirs) else "(end)"
            closest = (same, path, f"their row {same} {row}")
    hint = f"; closest is {closest[1].name}, which differs at {closest[2]}" if closest[1] is not None else ""
    raise UnsupportedArchitectureError(
        f"{foreign.path}: {foreign.description} is an architecture this project cannot build "
        f"(its layers match no config under cfg/{hint})"
    )


def _rows(config: dict[str, Any]) -> list[Any]:
    """backbone + head rows as plain lists (tuples and lists compare equal), or [] when malformed."""
    sections = [config.get("backbone") or [], config.get("head") or []]
    if not all(isinstance(section, list) for section in sections):
        return []
    rows = [*sections[0], *sections[1]]
    return [_plain(row) for row in rows] if all(isinstance(r, (list, tuple)) for r in rows) else []


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _configured(path: Path, ours: dict[str, Any], foreign: ForeignCheckpoint) -> dict[str, Any]:
    """Our config with their nc and scaling: a scale letter of ours when their multiples are one of our scales
    (as for the released weights), else their multiples as a one-entry `scales` named 'custom'."""
    nc = foreign.yaml.get("nc")
    config = {**ours, "yaml_file": path.name, "nc": nc if isinstance(nc, int) and nc > 0 else len(foreign.names)}
    scaling = _their_scaling(foreign)
    scales = ours.get("scales") or {}
    letter = next((k for k, v in scales.items() if _same_scaling(v, scaling)), None)
    if letter is not None:
        config["scale"] = letter
    else:
        config.pop("depth_multiple", None)
        config.pop("width_multiple", None)
        config["scales"], config["scale"] = {"custom": scaling}, "custom"
    anchors = _anchors_in_pixels(foreign)
    if anchors is not None:
        config["anchors"] = anchors
    return config


def _their_scaling(foreign: ForeignCheckpoint) -> list[float]:
    """[depth, width, max_channels] as their parse_model applies them (YOLOv5: no channel cap)."""
    config = foreign.yaml
    scales, scale = config.get("scales"), config.get("scale")
    try:
        if isinstance(scales, dict) and scales:
            values = scales.get(scale) if scale in scales else next(iter(scales.values()))
            if isinstance(values, (list, tuple)) and len(values) == 3:
                return [float(v) for v in values]
        depth = float(config.get("depth_multiple", 1.0))
        width = float(config.get("width_multiple", 1.0))
        max_channels = float(config.get("max_channels", float("inf")))
    except (TypeError, ValueError):
        raise ForeignCheckpointError(f"{foreign.path}: unreadable depth/width multiples in its config") from None
    return [depth, width, max_channels]


def _same_scaling(values: Any, scaling: list[float]) -> bool:
    """Whether one of our scale rows builds what theirs does (a cap above every channel count is no cap)."""
    if not isinstance(values, (list, tuple)) or len(values) < 2:
        return False
    depth, width = float(values[0]), float(values[1])
    cap = float(values[2]) if len(values) > 2 else float("inf")
    their_cap = scaling[2] if scaling[2] != float("inf") else 1024.0  # our configs ask for at most 1024 channels
    return abs(depth - scaling[0]) < 1e-9 and abs(width - scaling[1]) < 1e-9 and min(cap, 1024.0) == their_cap


def _anchors_in_pixels(foreign: ForeignCheckpoint) -> list[list[float]] | None:
    """YOLOv5's anchors as its Detect holds them (grid units, possibly refitted by AutoAnchor), in pixels."""
    anchors = foreign.anchors
    if not isinstance(anchors, torch.Tensor) or anchors.numel() == 0:
        return None
    stride = torch.tensor(foreign.stride, dtype=torch.float32).view(-1, 1, 1)
    if anchors.ndim != 3 or stride.shape[0] != anchors.shape[0]:
        raise ForeignCheckpointError(f"{foreign.path}: anchors {tuple(anchors.shape)} do not match strides")
    pixels = anchors.float() * stride
    return [[round(float(v), 4) for v in level.flatten()] for level in pixels]


def load_mapped_state(model: DetectionModel, foreign: ForeignCheckpoint, report: ImportReport) -> None:
    """Pair their tensors with ours in order (our heads' `stride` buffers aside) and load them; every pair must
    agree in shape, and both sides must run out together."""
    ours = model.state_dict()
    targets = [k for k in ours if not _is_head_stride(model, k)]
    theirs = list(foreign.state.items())
    state: dict[str, torch.Tensor] = {}
    for position, (our_key, (their_key, tensor)) in enumerate(zip(targets, theirs)):
        if their_key == f"{_head_prefix(model)}anchors":
            tensor = tensor * torch.tensor(foreign.stride, dtype=tensor.dtype).view(-1, 1, 1)  # grid units -> pixels
        if tuple(tensor.shape) != tuple(ours[our_key].shape):
            raise ForeignCheckpointError(
                f"{foreign.path}: tensor {position} does not match: their {their_key} {tuple(tensor.shape)} vs "
                f"our {our_key} {tuple(ours[our_key].shape)}"
            )
        state[our_key] = tensor.to(ours[our_key].dtype)
    report.unmatched = [f"their {k}" for k, _ in theirs[len(targets) :]] + [f"our {k}" for k in targets[len(theirs) :]]
    if report.unmatched:
        raise ForeignCheckpointError(
            f"{foreign.path}: {len(theirs)} tensors in the file for {len(targets)} in {report.config}; "
            f"unmatched: {', '.join(report.unmatched[:3])}"
        )
    model.load_state_dict(state, strict=False)  # the head strides are ours, built from the config
    report.loaded = len(state)


def _head_prefix(model: DetectionModel) -> str:
    return f"model.{len(model.model) - 1}."


def _is_head_stride(model: DetectionModel, key: str) -> bool:
    return key == f"{_head_prefix(model)}stride"


def _check_strides(model: DetectionModel, foreign: ForeignCheckpoint) -> None:
    ours = [float(s) for s in model.stride]
    if foreign.stride and ours != foreign.stride:
        raise ForeignCheckpointError(f"{foreign.path}: strides {foreign.stride} differ from the built model's {ours}")


def _check_batchnorm_eps(model: nn.Module, foreign: ForeignCheckpoint) -> None:
    """Both references set BatchNorm eps to 1e-3, as ours does; eps is not part of a state dict, so a file whose
    eps differs would give slightly different outputs here: said, not hidden."""
    ours = {float(m.eps) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    theirs = set(foreign.batchnorm_eps)
    if theirs and theirs != ours:
        LOGGER.warning(
            f"{foreign.path}: BatchNorm eps {sorted(theirs)} where ours is {sorted(ours)}; outputs differ slightly"
        )


def _input_channels(config: dict[str, Any]) -> int:
    channels = config.get("ch", config.get("channels", 3))
    return channels if isinstance(channels, int) and channels > 0 else 3
