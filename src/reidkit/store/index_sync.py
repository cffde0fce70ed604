"""Keeping a store's two vector indexes (crops, tracks) in step with SQLite, which is the source of truth.

An index carries the store commit it reflects. On open, ``StoreVectors.load`` compares each index with SQLite
(ids present, rows changed after the index's commit) and repairs it, or rebuilds it from the BLOBs when it is missing
or claims a commit SQLite never made; so a vector id never points at nothing, whatever a crash left behind.
``save`` re-plans an index whose gallery outgrew its kind (exact -> approximate) before writing it.

An index that filters by itself (Milvus) gets each row's ``VectorFields`` (camera, wall-clock seconds) with its
vector, read here from SQLite. An index whose writes reach a shared database at once (Milvus) is repaired or rebuilt
only by a writable store: a read-only one searches it as it is, since a reader's view of SQLite may be older than
what a writer has just added (rows it misses resolve to nothing and are skipped; the next writer repairs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reidkit.errors import StoreError
from reidkit.store.filters import VectorFields
from reidkit.store.index_plan import plan_index
from reidkit.store.rows import in_batches
from reidkit.store.vector_index import (
    IndexLocation,
    VectorIndex,
    create_vector_index,
    describe_location,
    index_backend,
    load_vector_index,
)

if TYPE_CHECKING:
    from reidkit.store.reader import StoreReader

CROP_INDEX, TRACK_INDEX = "crops", "tracks"
_TABLES = {CROP_INDEX: "detections", TRACK_INDEX: "tracks"}
_READ_BATCH = 20_000
# Each row's camera and first / last wall-clock second (NULL without a start time), for ``VectorFields``.
_FIELDS_SQL = {
    CROP_INDEX: "SELECT d.id, c.name, v.start_epoch + d.time_s, v.start_epoch + d.time_s FROM detections d "
    "JOIN videos v ON v.id = d.video_id JOIN cameras c ON c.id = v.camera_id WHERE d.id IN ",
    TRACK_INDEX: "SELECT t.id, c.name, v.start_epoch + t.first_time_s, v.start_epoch + t.last_time_s FROM tracks t "
    "JOIN videos v ON v.id = t.video_id JOIN cameras c ON c.id = v.camera_id WHERE t.id IN ",
}


class StoreVectors:
    """The open store's vector indexes; empty until the store knows its model (and so the feature size)."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        self._indexes: dict[str, VectorIndex] = {}

    @property
    def loaded(self) -> bool:
        return bool(self._indexes)

    def get(self, name: str) -> VectorIndex:
        return self._indexes[name]

    def load(self, dim: int) -> None:
        """Load both indexes, repaired to match SQLite (or rebuilt from it)."""
        location = self.store.location
        for name in (CROP_INDEX, TRACK_INDEX):
            index = load_vector_index(location, name, dim)
            if index is not None and index.writes_through and not self.store.writable:
                pass  # a reader searches a shared database as it is (module docstring)
            elif index is None and not self.store.writable and index_backend(location.backend).writes_through:
                raise StoreError(
                    f"store {self.store.root} has no {name} index in {describe_location(location)}; a writer "
                    f"rebuilds it from SQLite: run `reidkit store reindex-backend --db {self.store.root} --to "
                    f"{location.backend}`"
                )
            elif index is None or index.commit_seq > self.store.commit_seq:
                index = self._rebuild(name, dim)
            else:
                self._sync(index, name)
            self._indexes[name] = index

    def add(self, name: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows' vectors to index ``name``, with their ``VectorFields`` when the index filters by itself."""
        index = self._indexes[name]
        index.add(ids, vectors, self.fields_of(name, ids) if index.applies_filters else None)

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()

    def refresh(self, since: int) -> None:
        """For a long-lived reader (the service): take in the rows other processes committed after commit ``since``
        (the last one this reader has seen) and drop the rows they deleted; load the indexes if the store got its
        model meanwhile, or again when a reindex switched it to a model of another feature size (``reindex``; one of
        the same size is covered by the rows' seq, which the switch advanced for every row). Nothing is written to
        disk."""
        model = self.store.model
        if model is not None and any(index.dim != model.feature_dim for index in self._indexes.values()):
            self.close()
        if not self._indexes:
            if model is not None:
                self.load(model.feature_dim)
            return
        for name, index in self._indexes.items():
            if not index.writes_through:  # a shared database already holds what the writer added
                self._sync(index, name, since)

    def save(self, replan: bool = True) -> None:
        """Persist both indexes, re-planned first if the gallery outgrew its index kind (``replan``; a live
        watcher re-plans in the background instead: ``outgrown``, ``adopt``)."""
        seq = self.store.commit_seq
        for name, index in list(self._indexes.items()):
            if replan and index.outgrown(self.store.count_rows(_TABLES[name])):
                index = self._rebuild(name, index.dim)
                self._indexes[name] = index
            if index.commit_seq != seq:
                index.save(seq)

    def outgrown(self) -> list[str]:
        """The indexes whose gallery outgrew (or shrank below) the kind they were built as."""
        return [name for name, index in self._indexes.items() if index.outgrown(self.store.count_rows(_TABLES[name]))]

    def adopt(self, name: str, index: VectorIndex, built_at: int) -> None:
        """Serve ``index`` as ``name`` from now on: built from SQLite elsewhere (another thread's reader) as of
        commit ``built_at`` at the latest, and brought up to date here with the rows changed since."""
        old = self._indexes.get(name)
        self._sync(index, name, since=built_at)
        self._indexes[name] = index
        if old is not None:
            old.close()

    def _sync(self, index: VectorIndex, name: str, since: int | None = None) -> None:
        """Bring a loaded index in step with SQLite: drop ids without a row, (re)add rows changed since its commit
        (or since commit ``since``, which a live reader's in-memory index reflects).

        When the index claims the current commit, matching counts are taken as proof (cheap for large stores); a
        count mismatch falls through to the full id comparison.
        """
        store, table = self.store, _TABLES[name]
        if since is None and index.commit_seq == store.commit_seq and index.count == store.count_rows(table):
            return
        stored = store.ids_of(f"SELECT id FROM {table} ORDER BY id", ())
        indexed = index.ids()
        after = index.commit_seq if since is None else since
        changed = store.ids_of(f"SELECT id FROM {table} WHERE seq > ? ORDER BY id", (after,))
        stale = np.union1d(np.setdiff1d(indexed, stored), np.intersect1d(indexed, changed))
        missing = np.union1d(np.setdiff1d(stored, indexed), changed)
        index.remove(stale)
        self._add_rows(index, name, missing)

    def rebuild(self, name: str, dim: int, location: IndexLocation) -> VectorIndex:
        """A fresh index of ``name`` at ``location`` (another backend, for a move) from SQLite; not saved."""
        return self._rebuild(name, dim, location)

    def replace(self, indexes: dict[str, VectorIndex]) -> None:
        """Serve ``indexes`` from now on (the old ones are closed, not deleted)."""
        self.close()
        self._indexes.update(indexes)

    def fields_of(self, name: str, ids: np.ndarray) -> VectorFields:
        """The ``VectorFields`` of rows ``ids`` of index ``name``, in the order of ``ids`` (all must exist)."""
        found: dict[int, tuple[str, float | None, float | None]] = {}
        for part, marks in in_batches(ids):
            for row_id, camera, first, last in self.store.db.execute(_FIELDS_SQL[name] + marks, part):
                found[int(row_id)] = (str(camera), first, last)
        rows = [found[int(i)] for i in ids]
        return VectorFields(
            np.array([r[0] for r in rows], dtype=object),
            np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64),
            np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64),
        )

    def _add_rows(self, index: VectorIndex, name: str, ids: np.ndarray) -> None:
        for start in range(0, len(ids), _READ_BATCH):
            found, vectors = self._vectors_of(name, ids[start : start + _READ_BATCH])
            index.add(found, vectors, self.fields_of(name, found) if index.applies_filters else None)

    def _rebuild(self, name: str, dim: int, location: IndexLocation | None = None) -> VectorIndex:
        """A fresh index of ``name`` from SQLite's BLOBs, laid out for the current gallery size."""
        all_ids = self.store.ids_of(f"SELECT id FROM {_TABLES[name]} ORDER BY id", ())
        plan = plan_index(len(all_ids), dim)
        training = None
        if plan.training_size:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(all_ids, size=min(plan.training_size, len(all_ids)), replace=False))
            training = self._vectors_of(name, sample)[1]
        index = create_vector_index(location or self.store.location, name, dim, plan, training)
        self._add_rows(index, name, all_ids)
        return index

    def _vectors_of(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if name == TRACK_INDEX:
            return self.store.track_vectors(ids)
        return self.store.detection_features(ids)
