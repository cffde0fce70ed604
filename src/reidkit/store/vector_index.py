"""The open vector-index interface: what the store needs from an index, what a backend brings, and their registry.

The store treats a vector index as a *cache* of the float32 features it keeps in SQLite: an index can always be
rebuilt from there, and it records the store commit (``commit_seq``) its content reflects so that the store can
tell, on open, which rows it is missing. Vector ids are the SQLite row ids.

A backend is one module with one class that implements ``IndexBackend`` (make, find again and delete an index; say
where it lives and check the options a user gives it) and whose instances are ``VectorIndex``es. Adding one is that
file plus one ``VECTOR_INDEXES.add`` line below: the registry names each backend's class by its import path, so
listing the backends (``reidkit list indexes``) or opening a store loads no index library until one is used.
``tests/test_store_backend.py`` adds an in-memory backend that way and runs every store operation on it.

Where a store's indexes live is an ``IndexLocation``: the backend's name, the store's ``vectors`` folder, and the
backend's own string options (Milvus: the server ``uri`` and the ``namespace`` of the store's collections). A store
records its location in SQLite's ``meta`` (``backend_choice``), each option as ``<backend>_<option>``, and the
command line gives an option as ``--<backend>-<option>`` (``--milvus-uri``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from reidkit.errors import StoreError
from reidkit.registry import Registry

if TYPE_CHECKING:
    from reidkit.store.filters import SearchFilters, VectorFields
    from reidkit.store.index_plan import IndexPlan


@dataclass(frozen=True)
class IndexLocation:
    """Where a store keeps its vector indexes: ``backend`` (a ``VECTOR_INDEXES`` name), the store's ``folder`` for
    a backend's files, and the backend's ``options`` (a missing option and "" mean the same: the default)."""

    backend: str
    folder: Path
    options: Mapping[str, str] = field(default_factory=dict)

    def option(self, key: str) -> str:
        return self.options.get(key, "")


@runtime_checkable
class VectorIndex(Protocol):
    """What the store needs from a vector index. Scores are inner products of L2-normalised vectors (cosine)."""

    @property
    def dim(self) -> int: ...

    @property
    def kind(self) -> str:
        """The layout it was built as (an ``IndexPlan.kind``: "flat" or "ivf_pq")."""
        ...

    @property
    def count(self) -> int: ...

    @property
    def commit_seq(self) -> int:
        """The store commit whose rows this index holds (-1: none)."""
        ...

    @property
    def applies_filters(self) -> bool:
        """True when ``search`` applies its ``filters`` itself, from the ``VectorFields`` that ``add`` was given;
        False when it ignores them (the caller filters the rows it gets back) and ``add`` needs no fields."""
        ...

    @property
    def writes_through(self) -> bool:
        """True when ``add`` / ``remove`` change shared storage at once (a database: a read-only store must not
        call them); False when they change this process's copy only, until ``save`` (files)."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: VectorFields | None = None) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(
        self, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(len(vectors), k)``, best first; missing neighbours have id -1. An index that
        ``applies_filters`` returns only vectors whose fields pass ``filters``."""
        ...

    def ids(self) -> np.ndarray: ...

    def save(self, commit_seq: int) -> None:
        """Persist atomically, recording that the content reflects store commit ``commit_seq``."""
        ...

    def outgrown(self, count: int) -> bool:
        """True when a gallery of ``count`` vectors wants this index rebuilt in another layout."""
        ...

    def close(self) -> None:
        """Let go of connections and processes (nothing is saved)."""
        ...


class IndexBackend(Protocol):
    """One kind of vector index, as the store meets it before it holds an index: the class a backend registers.

    ``writes_through`` is the ``VectorIndex`` property of its indexes, known before one exists (a reader cannot
    rebuild a missing index of a backend that writes through). ``option_names`` are the options a user may give
    (``--<backend>-<name>``); ``check_options`` refuses a bad value with a ``ConfigError`` naming the option;
    ``new_location`` is where a store's indexes go when it starts using this backend (a fresh namespace, say);
    ``describe`` names a location in messages ("FAISS files (faiss)").
    """

    writes_through: bool
    option_names: tuple[str, ...]

    def check_options(self, options: Mapping[str, str]) -> None: ...

    def new_location(self, folder: Path, options: Mapping[str, str]) -> IndexLocation: ...

    def describe(self, location: IndexLocation) -> str: ...

    def load(self, location: IndexLocation, name: str, dim: int) -> VectorIndex | None: ...

    def create(
        self, location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
    ) -> VectorIndex: ...

    def discard(self, location: IndexLocation, name: str) -> None: ...


# The backend of a new store when none is asked for, and of a store made before the choice existed.
DEFAULT_BACKEND = "faiss"
# Each backend's class by import path (imported on first use), and the line `reidkit list indexes` shows.
VECTOR_INDEXES: Registry[str] = Registry("vector index", StoreError)
VECTOR_INDEXES.add("faiss", "reidkit.store.faiss_index.FaissIndex",
                   "FAISS files beside the store: exact while small, IVF-PQ + exact re-score past that")
VECTOR_INDEXES.add("milvus", "reidkit.store.milvus_index.MilvusIndex",
                   "Milvus collections (embedded milvus-lite file, or a server's URI); "
                   "filters the camera and time inside the search")


def index_backend(name: str) -> IndexBackend:
    """The backend registered as ``name`` (its module imported now); an unknown name lists the choices."""
    module, _, attribute = VECTOR_INDEXES.get(name).rpartition(".")
    backend: IndexBackend = getattr(importlib.import_module(module), attribute)
    return backend


def load_vector_index(location: IndexLocation, name: str, dim: int) -> VectorIndex | None:
    """The saved index ``name`` at ``location``, or None when there is none to trust."""
    return index_backend(location.backend).load(location, name, dim)


def create_vector_index(
    location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
) -> VectorIndex:
    """A new empty index at ``location`` laid out as ``plan`` (trained on ``training`` where the plan needs it)."""
    return index_backend(location.backend).create(location, name, dim, plan, training)


def discard_vector_index(location: IndexLocation, name: str) -> None:
    """Delete what ``location`` holds of the index ``name`` (nothing happens when it holds none)."""
    index_backend(location.backend).discard(location, name)


def describe_location(location: IndexLocation) -> str:
    """How messages name ``location``, in its backend's words."""
    return index_backend(location.backend).describe(location)
