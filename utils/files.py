"""Files: run directories (`runs/detect/exp`, `exp2`, ...) claimed atomically, file names built from data kept
inside them, the newest trained `best.pt`, and YAML reading."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utils.errors import StorageError, UnsafePathError

MAX_NAME_LENGTH = 100  # characters kept of a name built from data (file systems allow 255 bytes)
_UNSAFE_CHARACTERS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')  # separators, drive colons, controls, NUL


@dataclass(frozen=True)
class RunDir:
    """A run directory this process created (`path`), and the directories it had to create for it, deepest
    first (`created`), so that a run that fails before writing anything can leave nothing behind (also as a
    context manager: `with claim_run_dir(path) as run_dir: ...`)."""

    path: Path
    created: tuple[Path, ...] = ()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        """Leaving a `with claim_run_dir(...)` block by an exception releases the directory if still empty."""
        if error_type is not None:
            self.release_if_empty()

    def release_if_empty(self) -> None:
        """Remove the directories this claim created, where they are still empty (a run that failed to start)."""
        for directory in self.created:
            try:
                directory.rmdir()
            except OSError:  # not empty (the run wrote something, or another run lives in the parent): keep it
                return


def claim_run_dir(path: str | Path, exist_ok: bool = False) -> RunDir:
    """Create and return a new run directory: `path` if free, else the first free of `path2`, `path3`, ...

    Each candidate is created with an exclusive `mkdir` and the next number is tried when it exists, so two runs
    started together with the same --project/--name never share a directory (`exp` and `exp2`), whatever the
    timing. With `exist_ok` the directory is `path` itself, created if missing and possibly shared.
    """
    path = Path(path)
    try:
        return _claim(path, exist_ok)
    except FileExistsError as e:  # a file, not a directory, in the way
        raise StorageError(f"{e.filename}: cannot create the run directory: a file of that name exists") from None
    except OSError as e:  # read-only storage, no permission, disk full: the user's to fix, said in one line
        raise StorageError(f"{e.filename or path}: cannot create the run directory: {e.strerror or e}") from None


def _claim(path: Path, exist_ok: bool) -> RunDir:
    """claim_run_dir's work; OSErrors pass through."""
    created = _make_parents(path.parent)
    if exist_ok:
        try:
            path.mkdir()
            created.insert(0, path)
        except FileExistsError:
            if not path.is_dir():
                raise
        return RunDir(path, tuple(created))
    for candidate in _numbered(path):
        try:
            candidate.mkdir()  # atomic: exactly one process succeeds for each name
        except FileExistsError:  # taken (by a directory or a file): the next number
            continue
        return RunDir(candidate, (candidate, *created))
    raise AssertionError("unreachable: the numbering never ends")


def _numbered(path: Path) -> Iterator[Path]:
    """`path`, then `path2`, `path3`, ...: the names a run directory may take, in order."""
    yield path
    yield from (Path(f"{path}{n}") for n in itertools.count(2))


def _make_parents(directory: Path) -> list[Path]:
    """`mkdir -p directory`; returns the directories created, deepest first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)  # another run may create it at the same moment
    return missing


def safe_name(text: object) -> str:
    """`text` (a class name, a file's name: anything taken from data) as one file name that stays where it is
    joined: separators, drive colons, NUL and control characters become `_`, leading dots and spaces are dropped
    (no `..`, no hidden files), long names are cut, and nothing becomes `_`."""
    name = _UNSAFE_CHARACTERS.sub("_", str(text)).lstrip(". ").rstrip(" ")
    if len(name) > MAX_NAME_LENGTH:  # cut the stem, keep a short suffix (`.txt`, `.jpg`)
        suffix = Path(name).suffix if len(Path(name).suffix) <= 10 else ""
        name = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
    return name or "_"


def path_inside(root: str | Path, *names: object) -> Path:
    """`root / safe_name(name) / ...`, checked to resolve inside `root` (a symlink planted under the run directory
    cannot redirect it); UnsafePathError otherwise."""
    root = Path(root)
    path = root.joinpath(*(safe_name(n) for n in names))
    resolved_root = root.resolve()
    if not path.resolve().is_relative_to(resolved_root) or path.resolve() == resolved_root:
        raise UnsafePathError(f"{path}: a name built from data {names!r} leads outside {root}")
    return path


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
