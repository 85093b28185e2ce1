"""What every detection loss shares: the call contract, hyperparameter checks and target validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import torch

from utils.sections import read_section


class LossHyp:
    """Base of a loss's hyperparameter section: a frozen dataclass of the gains it reads from the flat
    data/hyps/*.yaml files, declared as the loss class's `hyp_type`."""


class DetectionLoss:
    """A callable `loss(raw_preds, targets) -> (total, items)`.

    `raw_preds` are the head's raw per-level maps (`model(x)` in training mode, `model.forward_raw(x)` always);
    `targets` is an (M, 6) tensor of (image index, class, x, y, w, h), coordinates normalised to the network
    input. `total` is a scalar to backpropagate, already multiplied by the batch size (as the references do, so
    accumulating gradients up to a nominal batch behaves the same). `items` is a detached 1-D tensor of the
    gain-weighted components, per image, named by `names`.
    """

    names: tuple[str, ...] = ()
    hyp_type: ClassVar[type[LossHyp]] = LossHyp
    hyp_file: ClassVar[str] = ""  # its default hyperparameters, a file in data/hyps/
    head_type: ClassVar[type] = object  # the head class it trains (subclasses included)

    @classmethod
    def read_hyp(cls, hyp: Mapping[str, Any] | LossHyp) -> Any:
        """This loss's section (`hyp_type`): given as is, or read from a flat hyperparameter mapping (a
        data/hyps/*.yaml dict or engine.hyperparameters.Hyperparameters); a missing or non-numeric key raises."""
        section = getattr(hyp, "loss", hyp)  # Hyperparameters carry the section, checked when the file was read
        if isinstance(section, cls.hyp_type):
            return section
        return read_section(cls.hyp_type, hyp, f"{cls.__name__} hyperparameters")

    def __call__(self, raw_preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


LossType = TypeVar("LossType", bound=type[DetectionLoss])

# Loss classes by name; a head names its loss (`DetectionHead.loss_name`) and build_loss looks it up here, so
# models/ never imports losses/ and a new head type brings its loss as one registered class.
LOSSES: dict[str, type[DetectionLoss]] = {}


def register_loss(cls: LossType) -> LossType:
    """Class decorator: make a loss available to heads under its class name; a second class of that name raises.

    Registered losses are built as `cls(head, hyp, imgsz=...)` and declare their hyperparameters as `hyp_type`,
    a dataclass subclass of LossHyp (its keys are what a hyperparameter file may hold for this loss), their
    default file as `hyp_file` and the head class they train as `head_type`.
    """
    if not (dataclasses.is_dataclass(cls.hyp_type) and issubclass(cls.hyp_type, LossHyp)):
        raise TypeError(f"{cls.__name__}.hyp_type must be a dataclass subclass of LossHyp, got {cls.hyp_type}")
    known = LOSSES.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"a loss named {cls.__name__} is already registered ({known.__module__})")
    LOSSES[cls.__name__] = cls
    return cls


def check_targets(targets: torch.Tensor, batch_size: int, nc: int) -> torch.Tensor:
    """Validate the (M, 6) target tensor against the batch and the class count; returns it as float."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a tensor of shape (M, 6), got {type(targets).__name__}")
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(f"targets must have shape (M, 6) = (image, class, x, y, w, h), got {tuple(targets.shape)}")
    if targets.numel():
        image, cls = targets[:, 0], targets[:, 1]
        if image.min() < 0 or image.max() >= batch_size:
            raise ValueError(f"targets: image index outside [0, {batch_size - 1}] (max {image.max().item():g})")
        if cls.min() < 0 or cls.max() >= nc:
            raise ValueError(f"targets: class outside [0, {nc - 1}] (max {cls.max().item():g})")
    return targets.float()


def check_raw_preds(raw_preds: list[torch.Tensor], levels: int, family: str) -> None:
    """The head's raw maps: one tensor per level."""
    if not isinstance(raw_preds, (list, tuple)) or len(raw_preds) != levels:
        got = len(raw_preds) if isinstance(raw_preds, (list, tuple)) else type(raw_preds).__name__
        raise ValueError(f"{family} loss: expected the head's raw maps, a list of {levels} tensors, got {got}")


def check_anchor_maps(raw_preds: list[torch.Tensor], levels: int, anchors: int, nc: int) -> torch.Tensor:
    """The anchor-based head's raw maps: one (batch, anchors, h, w, 5 + nc) tensor per level; returns the first."""
    check_raw_preds(raw_preds, levels, "anchor-based")
    first = raw_preds[0]
    if first.ndim != 5 or first.shape[1] != anchors or first.shape[-1] != nc + 5:
        raise ValueError(
            f"anchor-based loss: level maps must be (batch, {anchors}, h, w, {nc + 5}), got {tuple(first.shape)}"
        )
    return first
