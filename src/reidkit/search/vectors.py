"""Vector search behind one small interface, so that FAISS on disk can later give way to a distributed database.

The store treats a vector index as a *cache* of the float32 features it keeps in SQLite: an index can always be
rebuilt from there, and it records the store commit (``commit_seq``) its content reflects so that the store can
tell, on open, which rows it is missing. Vector ids are the SQLite row ids.

FAISS layout: an exact ``IndexFlatIP`` inside an ``IndexIDMap2`` while the gallery is small, an ``IVF-PQ`` index
past ``FLAT_MAX_ELEMENTS`` (vectors x dimensions), both thresholds measured by ``benchmarks/bench_search_scale.py``
(figures: docs/search.md, Vector index, and benchmarks/RESULTS.md). Exact search is kept while its single-query
latency stays interactive; past that, IVF-PQ with its shortlist re-scored exactly from SQLite keeps recall close
to exact search in a fraction of the memory of IVF-Flat or IVF-SQ8, and IVF-SQ8 also reached lower recall on
256-d features. HNSW is not offered: it cannot remove vectors, and a resumed or ``--force`` ingest must.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import faiss
import numpy as np

from reidkit.errors import StoreError
from reidkit.registry import Registry

# Exact search up to this many stored floats (vectors x dim): where its p50 crossed 20 ms on 2 cores.
FLAT_MAX_ELEMENTS = 14_000_000
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

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(len(vectors), k)``, best first; missing neighbours have id -1."""
        ...

    def ids(self) -> np.ndarray: ...

    def save(self, commit_seq: int) -> None:
        """Persist atomically, recording that the content reflects store commit ``commit_seq``."""
        ...


@dataclass(frozen=True)
class IndexPlan:
    """Which FAISS index suits ``count`` vectors of ``dim`` dimensions."""

    kind: str  # "flat" or "ivf_pq"
    nlist: int = 0
    subquantizers: int = 0

    @property
    def description(self) -> str:
        if self.kind == "flat":
            return "IDMap2,Flat"
        return f"IVF{self.nlist},PQ{self.subquantizers}np"  # np: no polysemous training (slow, unused here)

    @property
    def training_size(self) -> int:
        """k-means wants ~40 points per list; PQ's 256 codes per sub-quantizer want tens of thousands."""
        return 0 if self.kind == "flat" else max(64 * self.nlist, 50_000)


def plan_index(count: int, dim: int) -> IndexPlan:
    """Exact while small, IVF-PQ (about sqrt(n) lists, 8 or 4 dims per code byte) past ``FLAT_MAX_ELEMENTS``."""
    if count * dim <= FLAT_MAX_ELEMENTS:
        return IndexPlan("flat")
    nlist = max(16, 2 ** round(math.log2(math.sqrt(count))))
    per_code = 8 if dim >= 1024 else 4
    subquantizers = dim // per_code if dim % per_code == 0 else dim
    return IndexPlan("ivf_pq", nlist, subquantizers)


def needs_new_plan(index: VectorIndex, count: int) -> bool:
    """True when the gallery has outgrown (or shrunk below) the index kind it was built as, or IVF lists x4."""
    wanted = plan_index(count, index.dim)
    if wanted.kind != index.kind:
        return True
    return isinstance(index, FaissIndex) and wanted.kind == "ivf_pq" and wanted.nlist >= 4 * index.nlist


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
    def create(cls, folder: Path, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None) -> FaissIndex:
        index = faiss.index_factory(dim, plan.description, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            if training is None or len(training) < plan.nlist:
                raise StoreError(f"cannot train a {plan.description} index for {name}: too few vectors to train on")
            index.train(np.ascontiguousarray(training, dtype=np.float32))
        return cls(folder, name, index, commit_seq=-1)

    @classmethod
    def load(cls, folder: Path, name: str, dim: int) -> FaissIndex | None:
        """The newest saved index of ``name`` with dimension ``dim``, or None (the caller rebuilds it)."""
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

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
    """How a kind of vector index is made and found again on disk (a class with these two constructors)."""

    def load(self, folder: Path, name: str, dim: int) -> VectorIndex | None: ...

    def create(self, folder: Path, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None) -> VectorIndex: ...


VECTOR_INDEXES: Registry[IndexKind] = Registry("vector index", StoreError)
VECTOR_INDEXES.add("faiss", FaissIndex, "FAISS files beside the store: exact while small, IVF-PQ + exact re-score past that")


def load_vector_index(kind: str, folder: Path, name: str, dim: int) -> VectorIndex | None:
    """The saved index ``name`` of ``kind``, or None when there is none to trust."""
    return VECTOR_INDEXES.get(kind).load(folder, name, dim)


def create_vector_index(
    kind: str, folder: Path, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
) -> VectorIndex:
    """A new empty index of ``kind`` laid out as ``plan`` (trained on ``training`` where the plan needs it)."""
    return VECTOR_INDEXES.get(kind).create(folder, name, dim, plan, training)
