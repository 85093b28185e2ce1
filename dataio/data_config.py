"""Data YAMLs: where a dataset's splits are and what its classes are called.

```yaml
path: trees            # dataset root; relative to this YAML's folder (or, failing that, to the working dir)
train: images/train    # a folder, a .txt list of images, a glob, or a list of those; relative to `path`
val: images/val
test:                  # optional
names: {0: tree}       # or a list; `nc` may be given too and must agree
```

`load_data_config("trees.yaml")` finds a bare file name anywhere under the project's `data/` folder, as model
configs are found under `cfg/`. Files are read with `yaml.safe_load` only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataio.sources import DatasetSourceError, is_glob, list_images
from utils.errors import UserError
from utils.files import load_yaml
from utils.values import is_int

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPLITS = ("train", "val", "test")


class DataConfigError(UserError, ValueError):
    """A data YAML that cannot be used; the message names the file and the key."""


class DataConfigNotFoundError(DataConfigError, FileNotFoundError):
    """No data YAML by that path or name."""


@dataclass
class DataConfig:
    """A validated data YAML. Split sources are absolute paths or glob patterns (None when not given)."""

    file: Path | None
    root: Path
    names: dict[int, str]
    train: list[str] | None = None
    val: list[str] | None = None
    test: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)

    def split(self, name: str) -> list[str]:
        """The sources of split `name`; a clear error if the YAML does not define it."""
        if name not in SPLITS:
            raise DataConfigError(f"unknown split '{name}' (one of {', '.join(SPLITS)})")
        sources = getattr(self, name)
        if not sources:
            raise DataConfigError(f"{self.file or '<dict>'}: no '{name}' split defined")
        return sources


def available_data_configs() -> list[Path]:
    """Data YAMLs shipped under data/ (hyperparameter files excluded)."""
    return sorted(p for p in DATA_DIR.rglob("*.yaml") if "hyps" not in p.relative_to(DATA_DIR).parts)


def find_data_file(name: str | Path) -> Path:
    """A data YAML by path, or by bare file name under data/ (`trees` and `trees.yaml` both work)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.parent == Path("."):
        wanted = path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml"
        matches = [p for p in available_data_configs() if p.name == wanted]
        if len(matches) > 1:
            raise DataConfigError(f"'{wanted}' is ambiguous under {DATA_DIR}: {', '.join(map(str, matches))}")
        if matches:
            return matches[0]
    names = sorted(p.name for p in available_data_configs())
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else f" Available under {DATA_DIR}: {', '.join(names)}"
    raise DataConfigNotFoundError(f"data config '{name}' not found as a path or under {DATA_DIR}.{hint}")


def load_data_config(data: str | Path | dict[str, Any], check_images: bool = True) -> DataConfig:
    """Read and validate a data YAML (a name, a path, or an already-loaded dict).

    With `check_images`, every split given must hold at least one image.
    """
    if isinstance(data, dict):
        raw, file, source = dict(data), None, "<dict>"
        base = Path.cwd()
    else:
        file = find_data_file(data)
        source = str(file)
        raw = load_yaml(file, DataConfigError)
        if not isinstance(raw, dict):
            raise DataConfigError(f"{source}: a data config must be a mapping with 'train'/'val' and 'names'")
        base = file.resolve().parent

    names = _parse_names(raw, source)
    if not any(raw.get(s) for s in ("train", "val")):
        raise DataConfigError(f"{source}: missing key 'train' or 'val' (a folder, .txt list or glob of images)")
    root = _resolve_root(raw.get("path"), base, source)
    config = DataConfig(file=file, root=root, names=names, raw=raw)
    for split in SPLITS:
        value = raw.get(split)
        if value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise DataConfigError(f"{source}: '{split}' must be a path, glob or list of them, got {value!r}")
        sources = [v if Path(v).is_absolute() else str(root / v) for v in items]
        if check_images:
            _check_split(sources, split, source)
        setattr(config, split, sources)
    return config


def _parse_names(raw: dict[str, Any], source: str) -> dict[int, str]:
    names, nc = raw.get("names"), raw.get("nc")
    if nc is not None and (not is_int(nc) or nc < 1):
        raise DataConfigError(f"{source}: 'nc' must be a positive integer, got {nc!r}")
    if names is None:
        if nc is None:
            raise DataConfigError(f"{source}: missing key 'names' (a list or {{index: name}} mapping of classes)")
        return {i: str(i) for i in range(nc)}
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise DataConfigError(f"{source}: 'names' must be a non-empty list or {{index: name}} mapping")
    if not all(is_int(k) for k in names) or sorted(names) != list(range(len(names))):
        raise DataConfigError(f"{source}: 'names' keys must be 0..{len(names) - 1}, got {sorted(names, key=str)}")
    if nc is not None and nc != len(names):
        raise DataConfigError(f"{source}: nc={nc} but 'names' lists {len(names)} classes")
    return {int(k): str(v) for k, v in sorted(names.items())}


def _resolve_root(path: Any, base: Path, source: str) -> Path:
    if path in (None, ""):
        return base
    if not isinstance(path, str):
        raise DataConfigError(f"{source}: 'path' must be a string, got {path!r}")
    root = Path(path).expanduser()
    if root.is_absolute():
        return root
    candidates = [(base / root).resolve(), (Path.cwd() / root).resolve()]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataConfigError(
        f"{source}: dataset root 'path: {path}' not found (looked in "
        f"{' and '.join(map(str, dict.fromkeys(candidates)))})"
    )


def _check_split(sources: list[str], split: str, source: str) -> None:
    for item in sources:
        if not is_glob(item) and not Path(item).exists():
            raise DataConfigError(f"{source}: '{split}' source {item} does not exist")
    try:
        list_images(sources)
    except DatasetSourceError as e:
        raise DataConfigError(f"{source}: '{split}' split: {e}") from None
