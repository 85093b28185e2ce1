"""Checking YOLO label files (`cls x_center y_center width height` per row, coordinates normalised to [0, 1]).

Rules (each problem is reported with the file, and the row number where it applies):
- UTF-8 text, a leading byte-order mark ignored; blank lines ignored; any whitespace separates columns;
- missing or empty label file: the image is a background image (counted, not a problem);
- unparseable number, wrong column count, non-integer or negative class, class >= nc, non-finite value, or
  x/y/w/h outside [0, 1] (coordinates not normalised): the whole file is wrong, so the image is skipped;
- a box whose corners stick out of the image (x +- w/2 outside [0, 1]): clipped to the image (fixed);
- a box of zero width or height (also after clipping): the row is dropped (fixed);
- duplicate rows: removed (fixed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TOLERANCE = 1e-6  # rounding slack on normalised values written with few decimals


@dataclass(frozen=True)
class Problem:
    """One finding about a dataset file. `action` is "skipped" (the image is left out) or "fixed"."""

    file: str
    message: str
    kind: str
    action: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message} ({'image skipped' if self.action == 'skipped' else 'fixed'})"


@dataclass
class LabelCheck:
    """The usable labels of one file (n, 5) float32 cls,x,y,w,h, whether the file must be skipped, problems."""

    labels: np.ndarray
    skip: bool
    problems: list[Problem]
    status: str  # "found", "missing" or "empty"


def _empty() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float32)


def check_label_file(path: str | Path, nc: int | None = None) -> LabelCheck:
    """Read and check one label file against the rules in this module's docstring."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is not data
    except FileNotFoundError:
        return LabelCheck(_empty(), False, [], "missing")
    except (OSError, UnicodeDecodeError) as e:
        return LabelCheck(
            _empty(), True, [Problem(name, f"unreadable label file ({e})", "label-unreadable", "skipped")], "found"
        )

    rows: list[list[float]] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            message = f"line {number}: {len(fields)} columns, expected 5 (cls x y w h)"
            return LabelCheck(_empty(), True, [Problem(name, message, "label-columns", "skipped")], "found")
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            message = f"line {number}: not a number in {line.strip()!r}"
            return LabelCheck(_empty(), True, [Problem(name, message, "label-not-numeric", "skipped")], "found")
        line_numbers.append(number)
    if not rows:
        return LabelCheck(_empty(), False, [], "empty")

    table = np.array(rows, dtype=np.float64)
    fatal = _fatal_problem(table, line_numbers, nc)
    if fatal is not None:
        return LabelCheck(_empty(), True, [Problem(name, fatal[1], fatal[0], "skipped")], "found")

    problems: list[Problem] = []
    table, line_numbers = _clip_boxes(table, line_numbers, name, problems)
    table = _drop_duplicates(table, line_numbers, name, problems)
    return LabelCheck(table.astype(np.float32), False, problems, "found")


def _fatal_problem(table: np.ndarray, lines: list[int], nc: int | None) -> tuple[str, str] | None:
    """(kind, message) for the first problem that makes the whole file unusable, or None."""
    bad = ~np.isfinite(table).all(1)
    if bad.any():
        return "label-not-finite", f"line {lines[int(np.argmax(bad))]}: non-finite value"
    classes = table[:, 0]
    bad = (classes != np.round(classes)) | (classes < 0)
    if bad.any():
        k = int(np.argmax(bad))
        return "label-class", f"line {lines[k]}: class {classes[k]:g} is not a non-negative integer"
    if nc is not None:
        bad = classes >= nc
        if bad.any():
            k = int(np.argmax(bad))
            return "label-class", f"line {lines[k]}: class {int(classes[k])} >= nc={nc}"
    coords = table[:, 1:]
    bad = ((coords < -_TOLERANCE) | (coords > 1 + _TOLERANCE)).any(1)
    if bad.any():
        k = int(np.argmax(bad))
        values = " ".join(f"{v:g}" for v in coords[k])
        return "label-coords", f"line {lines[k]}: coordinates {values} outside [0, 1] (not normalised?)"
    return None


def _clip_boxes(
    table: np.ndarray, lines: list[int], name: str, problems: list[Problem]
) -> tuple[np.ndarray, list[int]]:
    """Clip boxes to the image; drop rows left without area. Reports each row changed."""
    x, y, w, h = (table[:, i] for i in range(1, 5))
    x1, y1 = np.clip(x - w / 2, 0, 1), np.clip(y - h / 2, 0, 1)
    x2, y2 = np.clip(x + w / 2, 0, 1), np.clip(y + h / 2, 0, 1)
    clipped = table.copy()
    clipped[:, 1], clipped[:, 2] = (x1 + x2) / 2, (y1 + y2) / 2
    clipped[:, 3], clipped[:, 4] = x2 - x1, y2 - y1
    changed = np.abs(clipped[:, 1:] - table[:, 1:]).max(1) > _TOLERANCE
    empty = (clipped[:, 3] <= 0) | (clipped[:, 4] <= 0)
    for k in np.flatnonzero(empty):
        problems.append(
            Problem(name, f"line {lines[k]}: box of zero width or height dropped", "label-zero-size", "fixed")
        )
    for k in np.flatnonzero(changed & ~empty):
        problems.append(
            Problem(name, f"line {lines[k]}: box extends outside the image, clipped", "label-clipped", "fixed")
        )
    keep = ~empty
    return clipped[keep], [line for line, k in zip(lines, keep) if k]


def _drop_duplicates(table: np.ndarray, lines: list[int], name: str, problems: list[Problem]) -> np.ndarray:
    """Remove exact duplicate rows (as written, after clipping), keeping the first of each."""
    _, first = np.unique(table, axis=0, return_index=True)
    if len(first) == len(table):
        return table
    keep = np.zeros(len(table), dtype=bool)
    keep[first] = True
    removed = [lines[k] for k in np.flatnonzero(~keep)]
    listed = ", ".join(map(str, removed))
    problems.append(
        Problem(name, f"{len(removed)} duplicate row(s) removed (lines {listed})", "label-duplicate", "fixed")
    )
    return table[np.sort(first)]
