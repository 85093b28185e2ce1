"""Which configs a sweep trains: --cfgs resolved to names the trainer takes, each checked before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.suite.ours import config_names
from benchmarks.sweep.options import ALL_CONFIGS
from models.config import ConfigError, find_config_file
from utils.errors import OptionError


def resolve_configs(requested: Sequence[str], scale: str) -> list[str]:
    """--cfgs as the list of configs to train, in the given order, 'all' expanded to every config under cfg/ at
    `scale`. A name the config resolver does not find raises OptionError with the resolver's message (the close
    matches), and so do two configs whose run directories would share a name."""
    configs: list[str] = []
    for name in requested:
        configs += config_names((scale,)) if name == ALL_CONFIGS else [name]
    configs = list(dict.fromkeys(configs))
    for name in configs:
        try:
            find_config_file(name)
        except ConfigError as e:  # "model config 'yolo11n_mobilenet.yaml' not found ... Did you mean: ...?"
            raise OptionError(f"--cfgs {name}: {e}") from None
    stems: dict[str, str] = {}
    for name in configs:
        other = stems.setdefault(run_name(name), name)
        if other != name:
            raise OptionError(f"--cfgs: {other} and {name} would share the run directory '{run_name(name)}'")
    return configs


def run_name(config: str) -> str:
    """The config's run directory inside the sweep: its name as given, without the suffix (yolo11n_mobileone)."""
    return Path(config).stem
