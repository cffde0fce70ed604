"""Vector search behind one small interface, so that FAISS on disk can later give way to a distributed database.

The store treats a vector index as a *cache* of the float32 features it keeps in SQLite: an index can always be
rebuilt from there, and it records the store commit (``commit_seq``) its content reflects so that the store can
tell, on open, which rows it is missing. Vector ids are the SQLite row ids.

FAISS layout: an exact ``IndexFlatIP`` inside an ``IndexIDMap2`` while the gallery is small, an ``IVF-PQ`` index
past ``FLAT_MAX_ELEMENTS`` (vectors x dimensions), both thresholds measured by ``benchmarks/bench_search_scale.py``
(figures: docs/search.md, Vector index, and benchmarks/RESULTS.md). Exact search is kept while its single-query
latency stays interactive; past that, IVF-PQ with its shortlist re-scored exactly from SQLite keeps recall close
to exact search in a fraction of the memory of IVF-Flat or IVF-SQ8, and IVF-SQ8 also reached lower recall on
256-d features. HNSW is not offered: FAISS's cannot remove vectors, and a resumed or ``--force`` ingest must.

``VECTOR_INDEXES`` holds the kinds a store can be created with: ``faiss`` (files in the store folder) and
``milvus`` (``milvus_index``: collections in an embedded milvus-lite file or on a Milvus server, which also filter
by camera and time inside the search). A store records its kind (``backend_choice``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import faiss
import numpy as np

from reidkit.errors import StoreError
from reidkit.registry import Registry
from reidkit.search.filters import SearchFilters, VectorFields
from reidkit.search.index_plan import IndexLocation, IndexPlan, plan_index
from reidkit.search.milvus_index import MilvusIndex

# IVF-PQ probes 1/128 of its lists (at least 8): the share that kept recall@10 >= 0.98 after re-scoring at 1M
# (1024 lists, nprobe 8, 2048-d and 256-d) and at 10M (4096 lists, nprobe 32, 256-d; 2048-d needed 16).
IVF_PROBE_SHARE = 128
IVF_MIN_PROBES = 8

_FILE_PATTERN = re.compile(r"^(?P<name>[a-z]+)\.seq(?P<seq>\d+)\.faiss$")


@runtime_checkable
class VectorIndex(Protocol):
    """What the store needs from a vector index. Scores are inner products of L2-normalised vectors (cosine)."""

    @property
    def dim(self) -> int: ...

    @property
    def kind(self) -> str: ...

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


class FaissIndex:
    """A FAISS index saved as ``<folder>/<name>.seq<N>.faiss``; the newest readable file wins on load."""

    def __init__(self, folder: Path, name: str, index: faiss.Index, commit_seq: int) -> None:
        self.folder, self.name = folder, name
        self._index = index
        self._commit_seq = commit_seq
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = min(ivf.nlist, max(IVF_MIN_PROBES, ivf.nlist // IVF_PROBE_SHARE))

    # --- construction -------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
    ) -> FaissIndex:
        index = faiss.index_factory(dim, plan.description, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            if training is None or len(training) < plan.nlist:
                raise StoreError(f"cannot train a {plan.description} index for {name}: too few vectors to train on")
            index.train(np.ascontiguousarray(training, dtype=np.float32))
        return cls(location.folder, name, index, commit_seq=-1)

    @staticmethod
    def discard(location: IndexLocation, name: str) -> None:
        """Delete the saved files of ``name`` (a store moved to another backend)."""
        for _, path in _saved_files(location.folder, name):
            path.unlink(missing_ok=True)

    @classmethod
    def load(cls, location: IndexLocation, name: str, dim: int) -> FaissIndex | None:
        """The newest saved index of ``name`` with dimension ``dim``, or None (the caller rebuilds it)."""
        folder = location.folder
        for seq, path in sorted(_saved_files(folder, name), reverse=True):
            try:
                index = faiss.read_index(str(path))
            except RuntimeError:
                continue  # unreadable: an older file or a rebuild will do
            if index.d == dim:
                return cls(folder, name, index, seq)
        return None

    # --- the VectorIndex interface ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return "flat" if self._ivf() is None else "ivf_pq"

    @property
    def nlist(self) -> int:
        ivf = self._ivf()
        return 0 if ivf is None else int(ivf.nlist)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    @property
    def commit_seq(self) -> int:
        return self._commit_seq

    @property
    def applies_filters(self) -> bool:
        return False  # FAISS holds vectors only; the search filters its shortlist's rows

    @property
    def writes_through(self) -> bool:
        return False

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: VectorFields | None = None) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(
        self, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self.count == 0 or k <= 0:
            empty = np.zeros((len(vectors), max(k, 0)))
            return empty.astype(np.float32), (empty - 1).astype(np.int64)
        scores, ids = self._index.search(vectors, k)
        return scores, ids

    def ids(self) -> np.ndarray:
        ivf = self._ivf()
        if ivf is None:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if lists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def save(self, commit_seq: int) -> None:
        """Write to a temporary file, fsync, rename into place, then drop older files: a crash leaves one whole file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{self.name}.seq{commit_seq:012d}.faiss"
        temporary = final.with_name(f".{final.name}.tmp")
        try:
            faiss.write_index(self._index, str(temporary))
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except (RuntimeError, OSError) as exc:
            temporary.unlink(missing_ok=True)
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot write vector index {final}: {reason}; free disk space and rerun") from exc
        self._commit_seq = commit_seq
        for _, old in _saved_files(self.folder, self.name):
            if old != final:
                old.unlink(missing_ok=True)

    def outgrown(self, count: int) -> bool:
        """The gallery has outgrown (or shrunk below) the kind this index was built as, or its IVF lists x4."""
        wanted = plan_index(count, self.dim)
        return wanted.kind != self.kind or (wanted.kind == "ivf_pq" and wanted.nlist >= 4 * self.nlist)

    def close(self) -> None:
        """Nothing to let go of: the index is this process's memory."""

    def _ivf(self) -> faiss.IndexIVF | None:
        try:
            return faiss.extract_index_ivf(self._index)
        except RuntimeError:
            return None


def _saved_files(folder: Path, name: str) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _FILE_PATTERN.match(path.name)
        if match and match["name"] == name:
            found.append((int(match["seq"]), path))
    return found


class IndexKind(Protocol):
    """How a kind of vector index is made, found again and deleted (a class with these three functions)."""

    def load(self, location: IndexLocation, name: str, dim: int) -> VectorIndex | None: ...

    def create(
        self, location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
    ) -> VectorIndex: ...

    def discard(self, location: IndexLocation, name: str) -> None: ...


VECTOR_INDEXES: Registry[IndexKind] = Registry("vector index", StoreError)
VECTOR_INDEXES.add("faiss", FaissIndex, "FAISS files beside the store: exact while small, IVF-PQ + exact re-score past that")
VECTOR_INDEXES.add("milvus", MilvusIndex, "Milvus collections (embedded milvus-lite file, or a server's URI); "
                   "filters the camera and time inside the search")


def load_vector_index(location: IndexLocation, name: str, dim: int) -> VectorIndex | None:
    """The saved index ``name`` at ``location``, or None when there is none to trust."""
    return VECTOR_INDEXES.get(location.backend).load(location, name, dim)


def create_vector_index(
    location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
) -> VectorIndex:
    """A new empty index at ``location`` laid out as ``plan`` (trained on ``training`` where the plan needs it)."""
    return VECTOR_INDEXES.get(location.backend).create(location, name, dim, plan, training)


def discard_vector_index(location: IndexLocation, name: str) -> None:
    """Delete what ``location`` holds of the index ``name`` (nothing happens when it holds none)."""
    VECTOR_INDEXES.get(location.backend).discard(location, name)
