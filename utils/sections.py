"""Typed sections of a flat config file: a frozen dataclass per section, read from one flat mapping (as YOLOv5's
and ultralytics' hyperparameter YAMLs are), each value checked against its field's type, with one-line errors
that name the file and the key."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeVar

from utils.values import is_int, is_number

SectionT = TypeVar("SectionT")


def unknown_key(key: str, known: Iterable[str]) -> str:
    """`unknown key 'lr00' (did you mean lr0?)`, the suggestion only when one is close."""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]}?)" if close else "")


def check_keys(
    values: Mapping[str, Any], known: Collection[str], where: str, error: type[Exception] = ValueError
) -> None:
    """Raise `error('<where>: unknown key ...')` for the first key of `values` not in `known`."""
    for key in values:
        if key not in known:
            raise error(f"{where}: {unknown_key(key, known)}")


def section_keys(section: type) -> tuple[str, ...]:
    """The keys a section dataclass reads, in declaration order."""
    return tuple(field.name for field in dataclasses.fields(section))


def read_section(
    section: type[SectionT], values: Mapping[str, Any], where: str, error: type[Exception] = ValueError
) -> SectionT:
    """`section` built from its own keys of `values` (other keys are left to other sections).

    A key the section needs and `values` lacks, or a value of the wrong type (`true` is no number, '1e-3' no
    float), raises `error('<where>: ...')`. Ints given for float fields become floats.
    """
    types = typing.get_type_hints(section)
    fields = dataclasses.fields(section)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        raise error(f"{where}: missing key{'s' if len(missing) > 1 else ''} {listed} ({section.__name__})")
    return section(
        **{f.name: check_value(f.name, values[f.name], types[f.name], where, error) for f in fields if f.name in values}
    )


def check_value(key: str, value: Any, expected: Any, where: str, error: type[Exception] = ValueError) -> Any:
    """`value` as a `expected` (float, int, bool or str), or `error("<where>: 'key' must be a number, got 'abc'")`."""
    if expected is float:
        if is_number(value):
            return float(value)
        raise error(f"{where}: {key!r} must be a number, got {value!r}")
    if expected is int:
        if is_int(value):
            return value
        raise error(f"{where}: {key!r} must be an integer, got {value!r}")
    if expected in (bool, str):
        if isinstance(value, expected):
            return value
        raise error(f"{where}: {key!r} must be {'true or false' if expected is bool else 'a string'}, got {value!r}")
    raise TypeError(f"{key}: sections hold float, int, bool or str values, not {expected}")
