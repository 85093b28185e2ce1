"""Hyperparameters: a data/hyps/*.yaml file, flat as YOLOv5's and ultralytics' are, read once into typed sections
(optimiser, the head's loss, augmentation) and validated on load, so a mistyped key or value stops the run
before it starts with one line naming the file and the key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch.nn as nn

from dataio.augmentation_hyp import AugmentationHyp
from engine.optim import OptimizerHyp
from losses import LOSSES, LossHyp, loss_class, losses_for
from utils.errors import UserError
from utils.files import load_yaml
from utils.logging import LOGGER
from utils.sections import check_keys, check_value, read_section, section_keys, unknown_key

HYP_DIR = Path(__file__).resolve().parent.parent / "data" / "hyps"

# Keys of YOLOv5's hyperparameter files that nothing here reads: such a file loads, with a warning.
IGNORED_KEYS = {
    "iou_t": "YOLOv5 does not read it either",
    "anchors": "anchors come from the model config",
    "copy_paste": "copy-paste augmentation is not implemented",
}


class HyperparameterError(UserError, ValueError):
    """A hyperparameter file that cannot be used: missing, not a mapping, an unknown key or a mistyped value."""


@dataclass(frozen=True)
class Hyperparameters(Mapping[str, float]):
    """A run's hyperparameters in sections; `hyp.optimizer.lr0` is typed, `hyp["lr0"]` reads the flat view the
    files and checkpoints use (keys of every section; `to_dict()` gives it as a plain dict)."""

    optimizer: OptimizerHyp
    loss: LossHyp  # the head's loss's own section (AnchorLossHyp, DFLLossHyp, ...)
    augmentation: AugmentationHyp

    def to_dict(self) -> dict[str, float]:
        """The flat mapping, sections in order: what hyp.yaml and checkpoints store."""
        return {key: getattr(section, key) for section in self._sections() for key in section_keys(type(section))}

    def replace(self, **values: float) -> Hyperparameters:
        """A copy with some values changed, e.g. `hyp.replace(label_smoothing=0.1)`; unknown keys raise."""
        unknown = sorted(set(values) - set(self))
        if unknown:
            raise HyperparameterError(f"{unknown_key(unknown[0], self)} (the loss reads {type(self.loss).__name__})")
        sections = {}
        for name, section in zip(("optimizer", "loss", "augmentation"), self._sections()):
            own = {k: v for k, v in values.items() if k in section_keys(type(section))}
            sections[name] = dataclasses.replace(section, **own)
        return Hyperparameters(**sections)

    def _sections(self) -> tuple[Any, ...]:
        return self.optimizer, self.loss, self.augmentation

    def __getitem__(self, key: str) -> float:
        for section in self._sections():
            if key in section_keys(type(section)):
                return getattr(section, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return sum(len(fields(section)) for section in self._sections())


def parse_hyperparameters(values: Mapping[str, Any], loss: type[LossHyp], where: str) -> Hyperparameters:
    """Check a flat mapping once (every key known, every value a number, nothing the loss needs missing) and
    split it into sections. Keys of other heads' losses are allowed (one file may serve several heads)."""
    if not isinstance(values, Mapping):
        raise HyperparameterError(f"{where}: expected a mapping of hyperparameters, got {type(values).__name__}")
    loss_keys = {key for cls in LOSSES.values() for key in section_keys(cls.hyp_type)}
    known = [*section_keys(OptimizerHyp), *loss_keys, *section_keys(AugmentationHyp), *IGNORED_KEYS]
    check_keys(values, known, where, HyperparameterError)
    for key in sorted(set(values) & loss_keys - set(section_keys(loss))):
        check_value(key, values[key], float, where, HyperparameterError)  # unused here, still checked
    ignored = [key for key in values if key in IGNORED_KEYS]
    if ignored:
        LOGGER.warning(f"{where}: ignoring {', '.join(f'{k} ({IGNORED_KEYS[k]})' for k in ignored)}")
    return Hyperparameters(
        read_section(OptimizerHyp, values, where, HyperparameterError),
        read_section(loss, values, where, HyperparameterError),
        read_section(AugmentationHyp, values, where, HyperparameterError),
    )


def find_in_hyp_dir(path: str | Path) -> Path | None:
    """`path` when it is a file, else the file of that name in data/hyps/, else None (the caller words the error)."""
    path = Path(path)
    for candidate in (path, HYP_DIR / path.name):
        if candidate.is_file():
            return candidate
    return None


def resolve_hyp_path(path: str | Path) -> Path:
    """A hyperparameter YAML by path, or by name from data/hyps/."""
    found = find_in_hyp_dir(path)
    if found is None:
        raise HyperparameterError(f"--hyp {path}: file not found")
    return found


def load_hyperparameters(path: str | Path, loss: type[LossHyp]) -> Hyperparameters:
    """A hyperparameter YAML by path, or by name from data/hyps/, checked for the loss section `loss`."""
    path = resolve_hyp_path(path)
    return parse_hyperparameters(load_yaml(path, HyperparameterError), loss, str(path))


def default_hyp_path(model: nn.Module, loss: str | None = None) -> Path:
    """The default hyperparameters of the loss `loss` (default: the head's own), a file in data/hyps/."""
    return HYP_DIR / loss_class(model, loss).hyp_file


def checkpoint_hyperparameters(
    model: nn.Module, ckpt: Mapping[str, Any], where: str, loss: str | None = None
) -> Hyperparameters:
    """The hyperparameters a run was trained with, from its checkpoint (`hyp`), checked as a file's would be:
    --resume continues with these, whatever the --hyp file says now (edited, moved or deleted)."""
    if not isinstance(ckpt.get("hyp"), Mapping):
        raise HyperparameterError(f"{where}: the checkpoint holds no hyperparameters (`hyp`) to resume with")
    return parse_hyperparameters(ckpt["hyp"], loss_class(model, loss).hyp_type, f"{where} (its hyp)")


def check_loss_keys(values: Mapping[str, Any], model: nn.Module, loss: str | None, where: str) -> None:
    """Refuse a file whose loss keys are those of another loss of the same head: its gains are on that loss's
    scale (a YOLOv5 hyp file holds box 0.05, the aligned loss expects ~7.5), so training would silently be off."""
    chosen = loss_class(model, loss)
    own = set(section_keys(chosen.hyp_type))
    for name in losses_for(model.head):
        foreign = sorted(set(values) & set(section_keys(LOSSES[name].hyp_type)) - own)
        if LOSSES[name] is not chosen and foreign:
            raise HyperparameterError(
                f"{where}: {', '.join(foreign)} belong to {name}, but this run trains with {chosen.__name__}; "
                f"pass --loss {name} to train with that loss and these gains"
            )


def hyperparameters_for(model: nn.Module, path: str | Path | None = None, loss: str | None = None) -> Hyperparameters:
    """`path` (default: the loss's own file) read for the loss `loss` (default: the one `model`'s head names)."""
    path = resolve_hyp_path(path or default_hyp_path(model, loss))
    values = load_yaml(path, HyperparameterError)
    hyp = parse_hyperparameters(values, loss_class(model, loss).hyp_type, str(path))
    check_loss_keys(values, model, loss, str(path))
    return hyp
