"""The search space of `--evolve`: a YAML beside the hyps (data/hyps/evolve_space.yaml) giving each searched
hyperparameter a range (`low`, `high`, `log`) or `choices`, read with yaml.safe_load and checked once, so a
misspelt key stops the search before any trial with one line naming the file and the close matches."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dataio.augmentation_hyp import AugmentationHyp
from engine.hyperparameters import HYP_DIR, IGNORED_KEYS, Hyperparameters, find_in_hyp_dir
from engine.optim import OptimizerHyp
from losses import LOSSES
from utils.errors import UserError
from utils.files import load_yaml
from utils.sections import section_keys
from utils.values import is_number

DEFAULT_SPACE = HYP_DIR / "evolve_space.yaml"
RANGE_KEYS = ("low", "high", "log", "relative")
CHOICE_KEYS = ("choices",)


class SearchSpaceError(UserError, ValueError):
    """A search-space file that cannot be used: missing, not a mapping, an unknown key or a bad range."""


class Suggester(Protocol):
    """What a space draws from: an Optuna trial's suggest methods (a protocol, so this module needs no optuna)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: list[float]) -> float: ...


@dataclass(frozen=True)
class ParameterRange:
    """One searched hyperparameter: a float in [low, high] (log scale with `log`) or one of `choices`; with
    `relative`, low and high multiply the run's starting value."""

    key: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    relative: bool = False
    choices: tuple[float, ...] = ()

    def bounds(self, start: float) -> tuple[float, float]:
        """The absolute [low, high] for a run whose starting value is `start`."""
        return (self.low * start, self.high * start) if self.relative else (self.low, self.high)

    def contains(self, value: float, start: float) -> bool:
        """Whether `value` is one the range can draw (the starting value is then the study's first trial)."""
        if self.choices:
            return value in self.choices
        low, high = self.bounds(start)
        return low <= value <= high

    def suggest(self, trial: Suggester, start: float) -> float:
        if self.choices:
            return float(trial.suggest_categorical(self.key, list(self.choices)))
        low, high = self.bounds(start)
        return float(trial.suggest_float(self.key, low, high, log=self.log))


@dataclass(frozen=True)
class SearchSpace:
    """The ranges of a space file, in file order, and the file (for messages)."""

    ranges: tuple[ParameterRange, ...]
    path: Path

    def applicable(self, start: Hyperparameters) -> tuple[ParameterRange, ...]:
        """The ranges this run searches: those its loss reads (a DFL head has no obj, an anchor head no dfl)."""
        ranges = tuple(r for r in self.ranges if r.key in start)
        for r in ranges:
            if r.relative and start[r.key] <= 0:
                raise SearchSpaceError(
                    f"{self.path}: {r.key} is relative, but the starting value is {start[r.key]:g}; give it an "
                    "absolute range (relative ranges multiply a positive starting value)"
                )
        return ranges

    def suggest(self, trial: Suggester, start: Hyperparameters) -> dict[str, float]:
        """One trial's values of every applicable hyperparameter."""
        return {r.key: r.suggest(trial, start[r.key]) for r in self.applicable(start)}

    def starting_point(self, start: Hyperparameters) -> dict[str, float]:
        """The starting values the space can draw: the first trial's fixed values (the rest are sampled)."""
        return {r.key: start[r.key] for r in self.applicable(start) if r.contains(start[r.key], start[r.key])}

    def describe(self) -> dict[str, dict[str, Any]]:
        """A plain mapping of the space (stored with the study, so a rerun with another space is refused)."""
        described: dict[str, dict[str, Any]] = {}
        for r in self.ranges:
            if r.choices:
                described[r.key] = {"choices": list(r.choices)}
            else:
                described[r.key] = {"low": r.low, "high": r.high, "log": r.log, "relative": r.relative}
        return described


def hyperparameter_keys() -> list[str]:
    """Every key a hyperparameter file may hold: optimiser, every loss's gains, augmentation."""
    keys = [*section_keys(OptimizerHyp)]
    for loss in LOSSES.values():
        keys += [k for k in section_keys(loss.hyp_type) if k not in keys]
    return keys + [k for k in section_keys(AugmentationHyp) if k not in keys]


def resolve_space_path(path: str | Path | None) -> Path:
    """A space file by path, or by name from data/hyps/ (default: data/hyps/evolve_space.yaml)."""
    if path is None:
        return DEFAULT_SPACE
    found = find_in_hyp_dir(path)
    if found is None:
        raise SearchSpaceError(f"--evolve-space {path}: file not found")
    return found


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    """Read and check a space file (see data/hyps/evolve_space.yaml for the format)."""
    path = resolve_space_path(path)
    values = load_yaml(path, SearchSpaceError)
    if not isinstance(values, Mapping) or not values:
        raise SearchSpaceError(f"{path}: expected a mapping of hyperparameter: range, got {type(values).__name__}")
    known = hyperparameter_keys()
    ranges = []
    for key, spec in values.items():
        if key not in known:
            hint = _close(str(key), known, IGNORED_KEYS)
            raise SearchSpaceError(f"{path}: unknown hyperparameter {key!r}{hint}")
        ranges.append(_read_range(str(key), spec, path))
    return SearchSpace(tuple(ranges), path)


def _read_range(key: str, spec: Any, path: Path) -> ParameterRange:
    where = f"{path}: {key}"
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"{where}: expected {{low: L, high: H}} or {{choices: [...]}}, got {spec!r}")
    for name in spec:
        if name not in RANGE_KEYS + CHOICE_KEYS:
            raise SearchSpaceError(f"{where}: unknown field {name!r}{_close(str(name), RANGE_KEYS + CHOICE_KEYS)}")
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise SearchSpaceError(f"{where}: give either choices or low/high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices or not all(_finite(c) for c in choices):
            raise SearchSpaceError(f"{where}: choices must be a non-empty list of numbers, got {choices!r}")
        return ParameterRange(key, choices=tuple(float(c) for c in choices))
    for name in ("low", "high"):
        if name not in spec:
            raise SearchSpaceError(f"{where}: missing {name!r} (or give choices)")
        if not _finite(spec[name]):
            raise SearchSpaceError(f"{where}: {name} must be a number, got {spec[name]!r}")
    for name in ("log", "relative"):
        if not isinstance(spec.get(name, False), bool):
            raise SearchSpaceError(f"{where}: {name} must be true or false, got {spec[name]!r}")
    low, high, log = float(spec["low"]), float(spec["high"]), spec.get("log", False)
    if not low < high:
        raise SearchSpaceError(f"{where}: low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise SearchSpaceError(f"{where}: a log range needs low > 0, got {low:g}")
    if spec.get("relative", False) and low < 0:
        raise SearchSpaceError(f"{where}: a relative range multiplies the starting value; low must be >= 0")
    return ParameterRange(key, low, high, log, spec.get("relative", False))


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(float(value))


def _close(name: str, known: Any, ignored: Mapping[str, str] | None = None) -> str:
    """` (did you mean a, b?)` for close matches, or why a known-but-unsearchable key is refused."""
    if ignored and name in ignored:
        return f" (not a hyperparameter this project reads: {ignored[name]})"
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
