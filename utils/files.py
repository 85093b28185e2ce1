"""Run directories and file lookups (runs/train/exp, exp2, ...; the newest checkpoint)."""

from __future__ import annotations

import re
from pathlib import Path


def increment_path(path: str | Path, exist_ok: bool = False, mkdir: bool = True) -> Path:
    """`runs/train/exp` if free, else the next of exp2, exp3, ... (or `path` itself when exist_ok)."""
    path = Path(path)
    if not (path.exists() and not exist_ok):
        candidate = path
    else:
        pattern = re.compile(rf"^{re.escape(path.name)}(\d+)$")
        taken = [int(m.group(1)) for p in path.parent.glob(f"{path.name}*") if (m := pattern.match(p.name))]
        candidate = path.with_name(f"{path.name}{max(taken, default=1) + 1}")
    if mkdir:
        candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def newest_file(pattern: str, root: str | Path = ".") -> Path | None:
    """The most recently modified file matching a glob pattern under `root`, or None."""
    matches = [p for p in Path(root).glob(pattern) if p.is_file()]
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None
