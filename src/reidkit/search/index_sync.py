"""Keeping a store's two vector indexes (crops, tracks) in step with SQLite, which is the source of truth.

An index file carries the store commit it reflects. On open, ``StoreVectors.load`` compares each index with SQLite
(ids present, rows changed after the index's commit) and repairs it, or rebuilds it from the BLOBs when it is missing
or claims a commit SQLite never made; so a vector id never points at nothing, whatever a crash left behind.
``save`` re-plans an index whose gallery outgrew its kind (exact -> approximate) before writing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reidkit.search.vectors import VectorIndex, create_vector_index, load_vector_index, needs_new_plan, plan_index

if TYPE_CHECKING:
    from reidkit.search.store import Store

CROP_INDEX, TRACK_INDEX = "crops", "tracks"
_TABLES = {CROP_INDEX: "detections", TRACK_INDEX: "tracks"}
_READ_BATCH = 20_000


class StoreVectors:
    """The open store's vector indexes; empty until the store knows its model (and so the feature size)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexes: dict[str, VectorIndex] = {}

    @property
    def loaded(self) -> bool:
        return bool(self._indexes)

    def get(self, name: str) -> VectorIndex:
        return self._indexes[name]

    def load(self, dim: int) -> None:
        """Load both indexes from disk, repaired to match SQLite (or rebuilt from it)."""
        folder = self.store.root / "vectors"
        for name in (CROP_INDEX, TRACK_INDEX):
            index = load_vector_index(self.store.backend, folder, name, dim)
            if index is None or index.commit_seq > self.store.commit_seq:
                index = self._rebuild(name, dim)
            else:
                self._sync(index, name)
            self._indexes[name] = index

    def refresh(self, since: int) -> None:
        """For a long-lived reader (the service): take in the rows other processes committed after commit ``since``
        (the last one this reader has seen) and drop the rows they deleted; load the indexes if the store got its
        model meanwhile. Nothing is written to disk."""
        if not self._indexes:
            model = self.store.model
            if model is not None:
                self.load(model.feature_dim)
            return
        for name, index in self._indexes.items():
            self._sync(index, name, since)

    def save(self) -> None:
        """Persist both indexes (re-planned first if the gallery outgrew its index kind)."""
        seq = self.store.commit_seq
        for name, index in list(self._indexes.items()):
            if needs_new_plan(index, self.store.count_rows(_TABLES[name])):
                index = self._rebuild(name, index.dim)
                self._indexes[name] = index
            if index.commit_seq != seq:
                index.save(seq)

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
        for start in range(0, len(missing), _READ_BATCH):
            index.add(*self._vectors_of(name, missing[start : start + _READ_BATCH]))

    def _rebuild(self, name: str, dim: int) -> VectorIndex:
        """A fresh index of ``name`` from SQLite's BLOBs, laid out for the current gallery size."""
        all_ids = self.store.ids_of(f"SELECT id FROM {_TABLES[name]} ORDER BY id", ())
        plan = plan_index(len(all_ids), dim)
        training = None
        if plan.training_size:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(all_ids, size=min(plan.training_size, len(all_ids)), replace=False))
            training = self._vectors_of(name, sample)[1]
        index = create_vector_index(self.store.backend, self.store.root / "vectors", name, dim, plan, training)
        for start in range(0, len(all_ids), _READ_BATCH):
            index.add(*self._vectors_of(name, all_ids[start : start + _READ_BATCH]))
        return index

    def _vectors_of(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if name == TRACK_INDEX:
            return self.store.track_vectors(ids)
        return self.store.detection_features(ids)
