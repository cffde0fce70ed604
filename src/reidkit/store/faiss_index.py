"""The FAISS vector index backend: a store's indexes as FAISS files in its ``vectors`` folder.

Layout: an exact ``IndexFlatIP`` inside an ``IndexIDMap2`` while the gallery is small, an ``IVF-PQ`` index past
``index_plan.FLAT_MAX_ELEMENTS`` (vectors x dimensions), both thresholds measured by
``benchmarks/bench_search_scale.py`` (figures: docs/search.md, Vector index, and benchmarks/RESULTS.md). Exact search
is kept while its single-query latency stays interactive; past that, IVF-PQ with its shortlist re-scored exactly from
SQLite keeps recall close to exact search in a fraction of the memory of IVF-Flat or IVF-SQ8, and IVF-SQ8 also
reached lower recall on 256-d features. HNSW is not offered: FAISS's cannot remove vectors, and a resumed or
``--force`` ingest must.

An index lives in this process's memory and is written to ``<name>.seq<N>.faiss`` on ``save``, so it neither
writes through nor filters (the search filters its shortlist's rows), and takes no options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from reidkit.errors import ConfigError, StoreError
from reidkit.store.index_plan import IndexPlan, plan_index
from reidkit.store.vector_index import IndexLocation

if TYPE_CHECKING:
    from reidkit.store.filters import SearchFilters, VectorFields

# IVF-PQ probes 1/128 of its lists (at least 8): the share that kept recall@10 >= 0.98 after re-scoring at 1M
# (1024 lists, nprobe 8, 2048-d and 256-d) and at 10M (4096 lists, nprobe 32, 256-d; 2048-d needed 16).
IVF_PROBE_SHARE = 128
IVF_MIN_PROBES = 8

_FILE_PATTERN = re.compile(r"^(?P<name>[a-z]+)\.seq(?P<seq>\d+)\.faiss$")


class FaissIndex:
    """A FAISS index saved as ``<folder>/<name>.seq<N>.faiss``; the newest readable file wins on load. The class is
    the registered ``IndexBackend``."""

    writes_through = False
    option_names: tuple[str, ...] = ()

    def __init__(self, folder: Path, name: str, index: faiss.Index, commit_seq: int) -> None:
        self.folder, self.name = folder, name
        self._index = index
        self._commit_seq = commit_seq
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = min(ivf.nlist, max(IVF_MIN_PROBES, ivf.nlist // IVF_PROBE_SHARE))

    # --- the IndexBackend interface ----------------------------------------------------------------------------
    @staticmethod
    def check_options(options: Mapping[str, str]) -> None:
        if options:
            raise ConfigError(f"the faiss vector index takes no options (given: {', '.join(sorted(options))})")

    @staticmethod
    def new_location(folder: Path, options: Mapping[str, str]) -> IndexLocation:
        return IndexLocation("faiss", folder)

    @staticmethod
    def describe(location: IndexLocation) -> str:
        return "FAISS files (faiss)"

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
