"""Type checks for values read from YAML or given as options, where `true`/`false` load as bool, a subclass of
int, and must not pass as numbers."""

from __future__ import annotations


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or a float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
