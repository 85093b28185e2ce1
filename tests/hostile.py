"""Hostile inputs for the fault-injection tests: names taken from data that try to leave the run directory."""

from __future__ import annotations

from pathlib import Path

TRAVERSAL_NAMES = ("../../../../escaped", "a/../../b", "..", "", ".", "..\\..\\win", "nul\x00byte")


def hostile_names(outside: Path, count: int) -> dict[int, str]:
    """`count` class names: relative traversals, `..`, the empty name, NUL, and an absolute path into `outside`
    (a folder the test watches, never a real system path)."""
    names = [str(outside / "absolute"), *TRAVERSAL_NAMES]
    return {i: names[i % len(names)] + ("" if i < len(names) else f"{i}") for i in range(count)}


def files_under(root: Path) -> set[Path]:
    """Every file and directory below `root` (to compare before and after a run)."""
    return set(root.rglob("*"))
