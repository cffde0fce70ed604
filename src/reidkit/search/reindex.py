"""Re-embedding a store under another model (``reidkit reindex``): the old features serve until the new are complete.

Three steps, each safe to kill:

1. The new model's feature of every stored crop goes to a side file ``<db>/reindex/<new model id>.sqlite``, one
   SQLite commit per batch. The store itself is not touched, so searches keep using the old model and its indexes;
   a rerun skips the crops the side file already holds (and embeds any a later ingest added).
2. One store transaction switches everything at once: each detection's feature, each track's ``feature_sum``
   (recomputed as the quality-weighted sum of its crops' new features, as ingest builds it), the model meta
   (``model_id``, ``feature_dim``, ``model_source``) and every row's ``seq``, set to a new commit; and the
   attributes: each crop's and track's recomputed where the new model has an attribute head (how a store made
   without attributes gets them), forgotten where it has none. A kill before it leaves the old model in place;
   after it, the new one.
3. Both vector indexes are rebuilt from SQLite for the new dimension and saved, then the side file is deleted. A kill
   here is repaired by the next open: an index of another dimension is not loaded (it is rebuilt), one of the same
   dimension is older than the switch's commit, which changed every row, so every vector is replaced. Running the
   same reindex again saves the repaired indexes and deletes the side file (a store already on the model has no
   crop to embed).

The store's writer lock is held throughout, so no ingest interleaves with a reindex.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from reidkit.attribute_schema import AttributeSchema
from reidkit.errors import StoreError
from reidkit.search.people import drop_people
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.paths import stored_file
from reidkit.store.rows import blob, normalise_rows

if TYPE_CHECKING:
    from reidkit.store.writer import Store

SIDE_FOLDER = "reindex"


class CropEmbedder(Protocol):
    """What a reindex needs from ``reidkit.inference.FeatureExtractor``: crop files in, features out, and attribute
    probabilities too where the model has an attribute head (``schema`` not None)."""

    @property
    def model_id(self) -> str: ...

    @property
    def feature_dim(self) -> int: ...

    schema: AttributeSchema | None

    def extract(self, images: list[Path], desc: str = ...) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True)
class ReindexReport:
    old_model: str
    new_model: str
    feature_dim: int
    detections: int
    computed: int  # crops embedded by this run (fewer than ``detections`` when it resumed)
    tracks: int
    seconds: float
    people_dropped: bool = False  # the store's people clustering, made under the old model, was forgotten


def side_file(root: Path, model_id: str) -> Path:
    """Where the features of ``model_id`` are gathered before the switch, in the store folder ``root``."""
    return Path(root) / SIDE_FOLDER / f"{model_id}.sqlite"


def reindex_store(
    store: Store,
    extractor: CropEmbedder,
    source: str,
    batch_size: int = 256,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> ReindexReport:
    """Re-embed every crop of ``store`` (writable) with ``extractor``, recording ``source`` as the model (module doc).

    ``on_batch(done)`` is called after each committed batch of the side file (how many it holds then)."""
    if not store.writable:
        raise StoreError(f"re-embedding store {store.root} needs it opened for writing")
    old = store.model
    new_id, dim = extractor.model_id, extractor.feature_dim
    if old is None:
        raise StoreError(f"store {store.root} holds no features yet; ingest a video into it first")
    _discard_other_side_files(store, new_id)
    started = time.perf_counter()
    wanted_schema = extractor.schema.name if extractor.schema is not None else None
    if old.model_id == new_id and store.meta_value("attribute_schema") == wanted_schema:
        # done before, or killed after its switch: finish step 3 (opening repaired the indexes)
        store.save_indexes()
        side_file(store.root, new_id).unlink(missing_ok=True)
        return ReindexReport(old.model_id, new_id, dim, store.count_rows("detections"), 0,
                             store.count_rows("tracks"), time.perf_counter() - started)
    path = side_file(store.root, new_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(_open_side(path, dim)) as side:
        computed = _fill_side(store, side, extractor, batch_size, progress, on_batch)
        detections, tracks, dropped = _switch(store, side, new_id, dim, source, wanted_schema)
    _rebuild_indexes(store, dim)
    path.unlink(missing_ok=True)
    return ReindexReport(old.model_id, new_id, dim, detections, computed, tracks, time.perf_counter() - started,
                         dropped)


def _open_side(path: Path, dim: int) -> sqlite3.Connection:
    side = sqlite3.connect(path, isolation_level=None)
    side.execute("PRAGMA journal_mode = WAL")
    side.execute("CREATE TABLE IF NOT EXISTS features (id INTEGER PRIMARY KEY, feature BLOB NOT NULL, attributes BLOB)")
    side.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    side.execute("INSERT OR IGNORE INTO meta VALUES ('feature_dim', ?)", (str(dim),))
    (held,) = side.execute("SELECT value FROM meta WHERE key = 'feature_dim'").fetchone()
    if int(held) != dim:
        raise StoreError(f"{path} holds {held}-d features, the model gives {dim}-d; delete it and rerun")
    return side


def _fill_side(
    store: Store,
    side: sqlite3.Connection,
    extractor: CropEmbedder,
    batch_size: int,
    progress: bool,
    on_batch: Callable[[int], None] | None,
) -> int:
    """Embed the crops the side file does not hold yet, one side commit per batch; returns how many."""
    held = {int(row[0]) for row in side.execute("SELECT id FROM features")}
    todo = [(int(i), p) for i, p in store.db.execute("SELECT id, crop_path FROM detections ORDER BY id")
            if int(i) not in held]
    with tqdm(total=len(todo), desc="re-embedding crops", unit="crop", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            part = todo[start : start + batch_size]
            features, attributes = extractor.extract([stored_file(store.root, p) for _, p in part], desc="batch")
            features = normalise_rows(features)
            side.execute("BEGIN")
            side.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?)",
                             [(i, blob(f), None if attributes is None else blob(attributes[row]))
                              for row, ((i, _), f) in enumerate(zip(part, features))])
            side.execute("COMMIT")
            bar.update(len(part))
            if on_batch is not None:
                on_batch(len(held) + start + len(part))
    return len(todo)


def _switch(
    store: Store, side: sqlite3.Connection, model_id: str, dim: int, source: str, attribute_schema: str | None
) -> tuple[int, int, bool]:
    """The one transaction that makes the new features the store's (module doc, step 2). The people clustering
    goes with the old features: its thresholds are the old model's scores, so searches would misread new ones."""
    sums: dict[int, np.ndarray] = {}
    with store.transaction():
        seq = store.commit_seq + 1
        owners = {int(d): (int(t), float(q))
                  for d, t, q in store.db.execute("SELECT id, track_id, quality FROM detections")}
        updated = 0
        store.db.execute("DELETE FROM detection_attributes")
        store.db.execute("DELETE FROM track_attributes")
        for det_id, feature, attributes in side.execute("SELECT id, feature, attributes FROM features ORDER BY id"):
            if det_id not in owners:
                continue  # deleted since (a --force ingest between runs)
            if attribute_schema is not None:
                store.db.execute("INSERT INTO detection_attributes(detection_id, probabilities) VALUES (?, ?)",
                                 (det_id, attributes))
            track_id, quality = owners[det_id]
            vector = np.frombuffer(feature, dtype=np.float32)
            weighted = vector * np.float32(max(quality, 1e-3))
            sums[track_id] = weighted if track_id not in sums else sums[track_id] + weighted
            store.db.execute("UPDATE detections SET feature = ?, seq = ? WHERE id = ?", (feature, seq, det_id))
            updated += 1
        if updated != len(owners):
            raise StoreError(f"store {store.root}: {len(owners) - updated} crops have no new feature; rerun the reindex")
        store.db.executemany("UPDATE tracks SET feature_sum = ?, seq = ? WHERE id = ?",
                             [(blob(total), seq, track_id) for track_id, total in sums.items()])
        store.set_meta_values({"model_id": model_id, "feature_dim": str(dim), "model_source": source,
                               "commit_seq": str(seq)})
        store.set_attribute_schema(attribute_schema, sums)
        dropped = drop_people(store)
    return updated, len(sums), dropped


def _rebuild_indexes(store: Store, dim: int) -> None:
    """Both indexes afresh from the switched SQLite (module doc, step 3), saved under the switch's commit."""
    store.vectors.close()
    built = {name: store.vectors.rebuild(name, dim, store.location) for name in (CROP_INDEX, TRACK_INDEX)}
    store.vectors.replace(built)
    store.save_indexes()


def _discard_other_side_files(store: Store, keep: str) -> None:
    """Side files of other models: reindexes that were abandoned (or switched, killed before deleting them)."""
    folder = store.root / SIDE_FOLDER
    if folder.is_dir():
        for path in folder.iterdir():
            if not path.name.startswith(keep + "."):
                path.unlink(missing_ok=True)
