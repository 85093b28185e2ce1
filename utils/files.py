"""Files: run directories (`runs/detect/exp`, `exp2`, ...), the newest trained `best.pt`, and YAML reading."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml


def increment_path(path: str | Path, exist_ok: bool = False, mkdir: bool = False) -> Path:
    """`runs/detect/exp` if free, else the first free of `exp2`, `exp3`, ... (as YOLOv5 numbers its runs).

    With `exist_ok` the path is returned as it is, existing or not. Files keep their suffix (`a.txt` -> `a2.txt`).
    """
    path = Path(path)
    if path.exists() and not exist_ok:
        stem, suffix = (path.with_suffix(""), path.suffix) if path.is_file() else (path, "")
        path = next(p for n in itertools.count(2) if not (p := Path(f"{stem}{n}{suffix}")).exists())
    if mkdir:
        path.mkdir(parents=True, exist_ok=True)
    return path


def newest_weights(runs_dir: str | Path = "runs", pattern: str = "train/*/weights/best.pt") -> Path | None:
    """The most recently written file matching `pattern` under `runs_dir` (a trained best.pt), or None."""
    candidates = [p for p in Path(runs_dir).glob(pattern) if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def load_yaml(path: str | Path, error: type[Exception] = ValueError) -> Any:
    """`yaml.safe_load` a file (nothing in it is evaluated); invalid YAML raises `error` naming the file and line,
    in one line. A tag that would build a Python object (`!!python/object/apply:os.system`) is invalid YAML here."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {_yaml_problem(e)}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: `line L, column C: <context>, <problem>`."""
    if not isinstance(error, yaml.MarkedYAMLError) or not error.problem:
        return " ".join(str(error).split())
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = " ".join(error.problem.split())
    if isinstance(error, yaml.constructor.ConstructorError) and "python/" in problem:
        problem += " (tags that build Python objects are refused: nothing in a YAML file is run)"
    context = f"{' '.join(error.context.split())}, " if error.context else ""
    return where + context + problem
