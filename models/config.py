"""Finding and reading model YAML files: name lookup under cfg/, scale letters, validation of top-level keys.

Files are read with `yaml.safe_load` only; nothing in a config is ever evaluated.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.layer_spec import Scaling
from utils.errors import UserError
from utils.files import load_yaml
from utils.logging import LOGGER
from utils.values import is_int, is_number

CFG_DIR = Path(__file__).resolve().parent.parent / "cfg"

# `yolo11n.yaml` -> `yolo11.yaml` at scale n; `yolo11n_mobilenetv4.yaml` -> `yolo11_mobilenetv4.yaml` at n.
_SCALED_NAME = re.compile(r"^(?P<base>.*?\d+)(?P<scale>[nslmx])(?P<rest>(?:[_-].*)?)$")
_UNSCALED_STEM = re.compile(r"^(?P<base>.*?\d+)(?P<rest>.*)$")  # the file's stem: yolo11 + _mobilenetv4


class ConfigError(UserError, ValueError):
    """A model config that cannot be built; the message names the file and, where it applies, the layer."""


@dataclass
class ModelConfig:
    """A validated model config: the YAML dict as written (plus its resolved scale) and what it implies."""

    name: str  # what the user asked for, e.g. "yolo11n"
    source: str  # the file it came from, or "<dict>"
    raw: dict[str, Any]  # the YAML mapping; `scale` and `nc` resolved. Checkpoints store this.
    scaling: Scaling

    @property
    def nc(self) -> int | None:
        return self.raw.get("nc")

    @property
    def anchors(self) -> Any:
        return self.raw.get("anchors")

    @property
    def rows(self) -> list[tuple[str, int, Any]]:
        """(section, row-in-section, row) for backbone then head."""
        return [
            (section, k, row) for section in ("backbone", "head") for k, row in enumerate(self.raw.get(section) or [])
        ]


def available_configs() -> list[Path]:
    """Every model YAML shipped under cfg/."""
    return sorted(CFG_DIR.rglob("*.yaml"))


def scaled_config_name(path: Path, scale: str) -> str:
    """The name users pass for scaled config file `path` at `scale` (yolo11_mobileone.yaml at n:
    yolo11n_mobileone.yaml); find_config_file reads it back as (path, scale)."""
    match = _UNSCALED_STEM.match(path.stem)
    if match is None:
        raise ValueError(f"{path.name}: a scaled config's name needs a version number to put the scale after")
    return f"{match['base']}{scale}{match['rest']}{path.suffix}"


def find_config_file(name: str | Path) -> tuple[Path, str | None]:
    """Locate a model YAML by path or by file name anywhere under cfg/.

    Returns the file and the scale letter implied by the name (`yolo11n.yaml` -> yolo11.yaml, "n"), or None.
    """
    requested = Path(name)
    if requested.suffix not in (".yaml", ".yml"):
        requested = requested.with_name(requested.name + ".yaml")
    scale_match = _SCALED_NAME.match(requested.stem)
    implied_scale = scale_match.group("scale") if scale_match else None

    found = _locate(requested)
    if found is not None:
        return found, implied_scale
    if scale_match:
        unified = requested.with_name(scale_match.group("base") + scale_match.group("rest") + requested.suffix)
        found = _locate(unified)
        if found is not None:
            return found, implied_scale
    names = sorted({p.name for p in available_configs()})
    close = difflib.get_close_matches(requested.name, names, n=5, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Available: {', '.join(names)}"
    raise ConfigError(f"model config '{name}' not found as a path or under {CFG_DIR}.{hint}")


def _locate(path: Path) -> Path | None:
    if path.is_file():
        return path
    if path.parent != Path("."):
        return None  # an explicit directory that does not hold the file
    matches = sorted(CFG_DIR.rglob(path.name))
    if len(matches) > 1:
        raise ConfigError(f"'{path.name}' is ambiguous under {CFG_DIR}: {', '.join(map(str, matches))}")
    return matches[0] if matches else None


def read_yaml(path: Path) -> Any:
    """safe_load a model YAML; syntax errors raise ConfigError naming the file and line."""
    return load_yaml(path, ConfigError)


def load_model_config(cfg: str | Path | dict[str, Any], scale: str | None = None, nc: int | None = None) -> ModelConfig:
    """Read and validate a model config from a name, a path or an already-loaded dict.

    `scale` picks a row of `scales` (default: the letter in the file name, then the file's own `scale`, then
    the first one listed). `nc` overrides the file's class count.
    """
    implied_scale = None
    if isinstance(cfg, dict):
        raw, source = copy.deepcopy(cfg), str(cfg.get("yaml_file", "<dict>"))
        name = Path(source).stem if source != "<dict>" else "model"
    else:
        path, implied_scale = find_config_file(cfg)
        raw, source, name = read_yaml(path), str(path), Path(str(cfg)).stem
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a model config must be a YAML mapping with 'backbone' and 'head'")
        raw["yaml_file"] = path.name

    for section in ("backbone", "head"):
        rows = raw.get(section)
        if section == "backbone" and not rows:
            raise ConfigError(f"{source}: missing '{section}' (a list of [from, number, module, args] rows)")
        if rows is not None and not isinstance(rows, list):
            raise ConfigError(f"{source}: '{section}' must be a list of [from, number, module, args] rows")

    if nc is not None:
        if raw.get("nc") not in (None, nc):
            LOGGER.info(f"Overriding {Path(source).name} nc={raw['nc']} with nc={nc}")
        raw["nc"] = nc
    if raw.get("nc") is not None and (not is_int(raw["nc"]) or raw["nc"] < 1):
        raise ConfigError(f"{source}: nc must be a positive integer, got {raw['nc']!r}")

    scaling = _resolve_scaling(raw, source, scale, implied_scale)
    return ModelConfig(name=name, source=source, raw=raw, scaling=scaling)


def _resolve_scaling(raw: dict[str, Any], source: str, scale: str | None, implied: str | None) -> Scaling:
    scales = raw.get("scales")
    if scales is not None:
        if not isinstance(scales, dict) or not scales:
            raise ConfigError(f"{source}: 'scales' must map letters to [depth, width, max_channels]")
        chosen = scale or implied or raw.get("scale")
        if chosen is None:
            chosen = next(iter(scales))
            LOGGER.warning(f"{Path(source).name}: no scale given, using '{chosen}' (available: {', '.join(scales)})")
        if chosen not in scales:
            raise ConfigError(f"{source}: unknown scale '{chosen}'; available scales: {', '.join(map(str, scales))}")
        values = scales[chosen]
        if not isinstance(values, (list, tuple)) or len(values) not in (2, 3) or not all(is_number(v) for v in values):
            raise ConfigError(f"{source}: scale '{chosen}' must be [depth, width, max_channels], got {values!r}")
        raw["scale"] = chosen
        depth, width = float(values[0]), float(values[1])
        max_channels = float(values[2]) if len(values) == 3 else math.inf
        return Scaling(depth, width, max_channels, chosen)

    if scale is not None:
        raise ConfigError(f"{source}: scale '{scale}' requested but the file defines no 'scales'")
    depth, width = raw.get("depth_multiple"), raw.get("width_multiple")
    if depth is None or width is None:
        raise ConfigError(
            f"{source}: missing 'scales' (YOLO11 style) or 'depth_multiple' and 'width_multiple' (YOLOv5 style)"
        )
    if not (is_number(depth) and is_number(width)) or depth <= 0 or width <= 0:
        raise ConfigError(f"{source}: depth_multiple and width_multiple must be positive numbers")
    return Scaling(float(depth), float(width))
