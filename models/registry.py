"""A small name -> object registry that refuses duplicates and explains unknown names."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not registered; the message lists the closest registered names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        matches = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
        if not matches:  # case slips (c3K2, sppf) are the most common typo
            matches = [k for k in known if k.lower() == name.lower()]
        hint = f"; did you mean {', '.join(matches)}?" if matches else f"; known: {', '.join(sorted(known))}"
        self.message = f"unknown {kind} '{name}'{hint}"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return self.message


class Registry(Generic[T]):
    """Maps names to objects. Registering a name twice raises, so plug-ins cannot shadow each other."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register `obj` under `name`; raises ValueError if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is already registered ({self._entries[name]!r})")
        self._entries[name] = obj
        return obj

    def remove(self, name: str) -> T:
        """Unregister `name` and return what it held (e.g. a test's temporary entry); UnknownNameError if absent."""
        self.get(name)  # the same error, with close matches, as a lookup of an unknown name
        return self._entries.pop(name)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator form of `add`; the name defaults to the object's `__name__`."""

        def decorator(obj: T) -> T:
            return self.add(name or obj.__name__, obj)  # type: ignore[attr-defined]

        return decorator

    def get(self, name: str) -> T:
        """Look a name up; raises UnknownNameError with close matches."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
