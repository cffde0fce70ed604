"""``Registry``: the one way reidkit picks a thing by name (models, backbones, datasets, detectors, ...).

Each stage owns the registry of its own kind and fills it where the things are defined, so adding a model is one
``add`` line in one file. A registry knows its kind and the error family of its stage, so an unknown name
always ends in the same one-line message listing what is there; ``reidkit list`` prints the same entries.
Builders that need a heavy library (torch for the torchvision detector) import it inside themselves, so a
registry can be listed without loading what its entries would build.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from reidkit.errors import ReidkitError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One named thing: what builds it and the line ``reidkit list`` shows for it."""

    name: str
    target: T
    summary: str


class Registry(Generic[T]):
    """Names to builders (or classes) of one kind, in registration order."""

    def __init__(self, kind: str, error: type[ReidkitError]) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, target: T, summary: str) -> T:
        """Register ``target`` as ``name``; registering a name twice is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, summary)
        return target

    def get(self, name: str) -> T:
        """The thing registered as ``name``, or the stage's error naming the choices."""
        entry = self._entries.get(name)
        if entry is None:
            raise self._error(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        return entry.target

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[Entry[T], ...]:
        return tuple(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
