"""Helpers shared by tests: configs to iterate over, a small config writer, the loss gains the loss tests use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from models.config import available_configs, read_yaml

# The loss gains of the references' scratch hyperparameters, without augmentation keys: what the loss tests feed.
ANCHOR_HYP = {
    "box": 0.05,
    "cls": 0.5,
    "cls_pw": 1.0,
    "obj": 1.0,
    "obj_pw": 1.0,
    "anchor_t": 4.0,
    "fl_gamma": 0.0,
    "label_smoothing": 0.0,
}
DFL_HYP = {"box": 7.5, "cls": 0.5, "dfl": 1.5, "label_smoothing": 0.0}


def config_cases(scales: tuple[str, ...] = ("n",)) -> list[tuple[str, str | None]]:
    """(config path, scale) for every YAML under cfg/; scaled configs at each of `scales` they define."""
    cases = []
    for path in available_configs():
        raw = read_yaml(path)
        if raw.get("scales"):
            cases += [(str(path), s) for s in scales if s in raw["scales"]]
        else:
            cases.append((str(path), None))
    return cases


def case_id(case: tuple[str, str | None]) -> str:
    path, scale = case
    return Path(path).stem + (f"-{scale}" if scale else "")


def write_config(directory: Path, name: str, config: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
