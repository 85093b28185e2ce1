"""Command-line options declared once, on the fields of a dataclass.

A script's options are one dataclass whose fields are declared with `option(default, help=..., choices=...,
aliases=...)`. `add_arguments` turns every field into an argparse flag: `--batch-size` for `batch_size`, the
converter from the annotation (`int | None` -> int, `list[int]` or `Sequence[str]` -> one or more values), help,
choices and aliases from the metadata. Bool fields are switches: `--flag` when the default is False,
`--flag/--no-flag` (BooleanOptionalAction) when it is True or None (None: "decided later", e.g. val.py's
per-class table by class count). String choices match in any case (`--optimizer sgd` is `SGD`, as ultralytics
accepts it) and are stored in the spelling the choices declare. The default is written only on the field, so the
parser, the Python API and the checkpoints that store the options cannot disagree; a field without `option()`
metadata is an error when the parser is built, so no field goes without a flag.

Value limits are declared on the field too (`minimum=1`, `maximum=1`, `above=0`, or a `check` function for
anything else) and enforced by `check_options`, which each options class calls from `__post_init__`: a bad
value fails with an OptionError naming the flag (`--epochs 0: must be >= 1`) when the options are built, so
from the command line and from Python alike, before any data is read or any directory created.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from utils.cli import report_user_error
from utils.errors import OptionError, UserError

OptionsT = TypeVar("OptionsT")

_METADATA_KEY = "option"
_SCALARS = (int, float, str)
_SEQUENCES = (list, tuple, Sequence)


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """How one field appears on the command line (the field's name and default give the rest)."""

    help: str
    choices: tuple[Any, ...] | Callable[[], Sequence[Any]] | None = None  # a callable: read when a parser is built
    aliases: tuple[str, ...] = ()
    nargs: str | int | None = None  # instead of the one the annotation implies
    const: Any = None  # the value of a flag given without its argument (nargs="?")
    type: Callable[[str], Any] | None = None  # instead of the converter the annotation implies
    minimum: float | None = None  # each value must be >= minimum
    maximum: float | None = None  # each value must be <= maximum
    above: float | None = None  # each value must be > above
    check: Callable[[Any], str | None] | None = None  # the whole value -> what is wrong with it, or None

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` (None is always allowed: it means "the default"), or None."""
        if value is None:
            return None
        if self.check is not None:
            return self.check(value)
        values = value if isinstance(value, (list, tuple)) else [value]
        each = "each value " if isinstance(value, (list, tuple)) else ""
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if v != v:  # NaN passes every comparison
                return f"{each}must be a number"
            if self.minimum is not None and v < self.minimum:
                return f"{each}must be >= {self.minimum:g}"
            if self.above is not None and v <= self.above:
                return f"{each}must be > {self.above:g}"
            if self.maximum is not None and v > self.maximum:
                return f"{each}must be <= {self.maximum:g}"
        return None


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    aliases: Sequence[str] = (),
    nargs: str | int | None = None,
    const: Any = None,
    type: Callable[[str], Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag (see the module docstring). Defaults must be immutable.

    `minimum`/`maximum` (inclusive) and `above` (exclusive) bound every number given; `check(value)` returns
    what is wrong with a value (or None) for rules bounds cannot say."""
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    spec = OptionSpec(help, choices, tuple(aliases), nargs, const, type, minimum, maximum, above, check)
    return dataclasses.field(default=default, metadata={_METADATA_KEY: spec})


def flag_name(field_name: str) -> str:
    """`batch_size` -> `--batch-size`."""
    return "--" + field_name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, options_class: type) -> argparse.ArgumentParser:
    """Add one flag per field of `options_class` to `parser`; returns the parser."""
    hints = typing.get_type_hints(options_class)
    for field in dataclasses.fields(options_class):
        spec = field.metadata.get(_METADATA_KEY)
        if spec is None:
            raise TypeError(
                f"{options_class.__name__}.{field.name} is not declared with option(): it would have no flag"
            )
        parser.add_argument(flag_name(field.name), *spec.aliases, **_argument(options_class, field, hints[field.name]))
    return parser


def check_options(options: Any) -> None:
    """Raise OptionError naming the flag for the first field of `options` whose value breaks its declared limits
    or choices. Call it from the options class's `__post_init__`."""
    for field in dataclasses.fields(options):
        spec: OptionSpec | None = field.metadata.get(_METADATA_KEY)
        if spec is None:
            continue
        value = getattr(options, field.name)
        problem = spec.problem(value)
        if problem is None and spec.choices is not None and value is not None:
            choices = tuple(spec.choices()) if callable(spec.choices) else spec.choices
            value = _canonical_choices(value, choices)
            setattr(options, field.name, value)  # `sgd` from Python is stored as `SGD`, as from the command line
            given = value if isinstance(value, (list, tuple)) else [value]
            if any(v not in choices for v in given):
                problem = f"choose from {', '.join(map(str, choices))}"
        if problem is not None:
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            raise OptionError(f"{flag_name(field.name)} {shown}: {problem}")


def build_parser(options_class: type, description: str | None = None) -> argparse.ArgumentParser:
    """A parser with every flag of `options_class`; `description` is shown as written (a script's docstring)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser, options_class)


def parse_options(
    options_class: type[OptionsT], argv: Sequence[str] | None = None, description: str | None = None
) -> OptionsT:
    """`options_class` filled from the command line (`argv`, default sys.argv[1:]); bad flags exit with status 2:
    argparse's usage message for what it parses, one `error: --flag value: ...` line for a value out of limits."""
    return parse_option_groups((options_class,), argv, description)[0]


def _argument(options_class: type, field: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    """argparse.add_argument keywords for one field."""
    spec: OptionSpec = field.metadata[_METADATA_KEY]
    if field.default is dataclasses.MISSING:
        raise TypeError(f"{options_class.__name__}.{field.name}: an option needs a default")
    kwargs: dict[str, Any] = {"dest": field.name, "default": field.default, "help": _help(spec.help, field.default)}
    base = _without_none(annotation)
    if base is bool:
        switch_off = field.default is True or field.default is None  # None: on, off, or left to the program
        kwargs["action"] = argparse.BooleanOptionalAction if switch_off else "store_true"
        return kwargs
    element, many = _element_type(base)
    converter = spec.type or element
    if converter is None:
        raise TypeError(
            f"{options_class.__name__}.{field.name}: cannot derive a converter from {annotation}; pass option(type=...)"
        )
    kwargs["type"] = converter
    nargs = spec.nargs if spec.nargs is not None else ("+" if many else None)
    if nargs is not None:
        kwargs["nargs"] = nargs
    if spec.const is not None:
        kwargs["const"] = spec.const
    if spec.choices is not None:  # a callable gives the choices of now (e.g. a format registered since import)
        kwargs["choices"] = tuple(spec.choices()) if callable(spec.choices) else spec.choices
        if all(isinstance(c, str) for c in kwargs["choices"]):
            kwargs["type"] = _any_case(converter, kwargs["choices"])
    return kwargs


def _case_map(choices: Sequence[Any]) -> dict[str, str]:
    """Lower-cased spelling -> declared spelling, for string choices that stay distinct in any case."""
    lowered: dict[str, str] = {}
    for choice in choices:
        if isinstance(choice, str):
            lowered.setdefault(choice.lower(), choice)
    return lowered


def _canonical_choices(value: Any, choices: Sequence[Any]) -> Any:
    """`value` (or each of a list's values) in the spelling `choices` declare it; anything else unchanged."""
    lowered = _case_map(choices)

    def canonical(v: Any) -> Any:
        return lowered.get(v.lower(), v) if isinstance(v, str) and v not in choices else v

    return type(value)(canonical(v) for v in value) if isinstance(value, (list, tuple)) else canonical(value)


def _any_case(converter: Callable[[str], Any], choices: Sequence[str]) -> Callable[[str], Any]:
    """The argparse converter for string choices: `sgd` -> `SGD`; an unknown value is left for argparse to refuse."""
    lowered = _case_map(choices)

    def convert(text: str) -> Any:
        value = converter(text)
        return lowered.get(value.lower(), value) if isinstance(value, str) else value

    convert.__name__ = getattr(converter, "__name__", "value")  # argparse names the converter in its errors
    return convert


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(annotation) if a is not type(None))
        return args[0] if len(args) == 1 else annotation
    return annotation


def _element_type(annotation: Any) -> tuple[Callable[[str], Any] | None, bool]:
    """(converter, takes several values?): int -> (int, False); list[int] / Sequence[str] -> (int|str, True)."""
    if annotation in _SCALARS:
        return annotation, False
    if typing.get_origin(annotation) in _SEQUENCES:
        args = typing.get_args(annotation)
        if args and args[0] in _SCALARS:
            return args[0], True
    return None, False


def _help(text: str, default: Any) -> str:
    """The help text (a literal '%' escaped for argparse) with the default appended where it says something."""
    text = text.replace("%", "%%")
    if default is None or isinstance(default, bool) or default == "" or "default" in text:
        return text
    shown = " ".join(str(v) for v in default) if isinstance(default, (list, tuple)) else str(default)
    return f"{text} (default: {shown.replace('%', '%%')})"


def options_from_keywords(options_class: type[OptionsT], values: dict[str, Any], caller: str) -> OptionsT:
    """`options_class` from Python keywords, as a script's flags would give it: field names, or the flags' aliases
    as keywords (`img_size=64` or `img=64` for `imgsz`, `batch=8` for `batch_size`, `conf=0.5`).

    An unknown keyword is an OptionError naming `caller` and the closest option names; values are checked as
    on the command line (`check_options`)."""
    fields = {field.name: field for field in dataclasses.fields(options_class)}
    aliases = {
        alias.lstrip("-").replace("-", "_"): name
        for name, field in fields.items()
        for alias in getattr(field.metadata.get(_METADATA_KEY), "aliases", ())
    }
    resolved: dict[str, Any] = {}
    for key, value in values.items():
        name = key if key in fields else aliases.get(key)
        if name is None:
            close = difflib.get_close_matches(key, [*fields, *aliases], n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(fields)}"
            raise OptionError(f"{caller}: unknown option {key!r}; {hint}")
        if name in resolved:
            raise OptionError(f"{caller}: {key!r} and another spelling of {name!r} both given")
        resolved[name] = value
    return options_class(**resolved)


def parse_option_groups(
    options_classes: Sequence[type], argv: Sequence[str] | None = None, description: str | None = None
) -> tuple[Any, ...]:
    """Like parse_options, for one command line whose flags are the fields of several dataclasses (their field
    names must differ): one instance of each, in order (train.py's TrainOptions and EvolveOptions)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for options_class in options_classes:
        add_arguments(parser, options_class)
    values = vars(parser.parse_args(argv))
    try:
        return tuple(
            options_class(**{f.name: values[f.name] for f in dataclasses.fields(options_class)})
            for options_class in options_classes
        )
    except UserError as e:
        raise SystemExit(report_user_error(e)) from None
