"""The watch list: people of interest enrolled by name, each held as one feature of the store's model.

A person is enrolled from what an operator has: a photo (a crop, or a whole frame with a box or one person the
detector finds, exactly as ``reidkit search PHOTO`` turns it into a query: ``search.query.query_crop`` and the
store's model from ``inference.model_choice``) or a stored track (its pooled, normalised track vector, the same vector
``reidkit search --track`` queries with). Live tracks are compared with these features by ``alerts.AlertListener``.

The list lives in the store folder's ``live.sqlite`` (``live_db``), not in the store's database: a watcher holds the
store's writer lock for as long as it runs, and people must still be enrolled and removed meanwhile. A feature
records the model that made it; features of any other model are refused at enrolment, and a person enrolled under
an earlier model (before a reindex) is listed as stale and never matched (features of two models never compare).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reidkit.errors import ConfigError, StoreError
from reidkit.live.live_db import ensure_tables, open_live_db

if TYPE_CHECKING:
    from reidkit.store.reader import StoreReader
    from reidkit.video import Detector

WATCHLIST_DDL = """
CREATE TABLE IF NOT EXISTS watchlist (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: (count, largest id) tells any change (watch_list_key)
    name TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL,            -- what the feature came from: "photo 'x.jpg' (crop)", "track 12"
    track_id INTEGER,                -- the store track enrolled from, when one
    model_id TEXT NOT NULL,          -- the model whose feature this is
    feature BLOB NOT NULL,           -- float32, L2-normalised
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
"""
MAX_NAME_CHARS = 100
MAX_NOTE_CHARS = 500


@dataclass(frozen=True)
class Enrolled:
    """One person on the watch list (without the feature, which never leaves the server)."""

    id: int
    name: str
    note: str
    source: str
    track_id: int | None
    model_id: str
    created_at: str
    created_by: str


@dataclass(frozen=True)
class WatchVectors:
    """The features of everyone enrolled under one model, row ``i`` belonging to ``ids[i]`` / ``names[i]``."""

    ids: np.ndarray  # int64
    names: list[str]
    vectors: np.ndarray  # (N, D) float32, unit rows


def watchlist_db(store_root: Path) -> sqlite3.Connection:
    """The store's live database with the watch list's table."""
    connection = open_live_db(store_root)
    ensure_tables(connection, WATCHLIST_DDL)
    return connection


def check_person_name(name: str, note: str, name_field: str = "--name", note_field: str = "--note") -> tuple[str, str]:
    """The name and note stripped; refused (naming the field) when the name is empty, either is too long or holds
    characters that cannot be printed."""
    name, note = name.strip(), note.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise ConfigError(f"{name_field} {name[:40]!r} must be 1 to {MAX_NAME_CHARS} printable characters")
    if len(note) > MAX_NOTE_CHARS or not note.replace("\n", " ").isprintable():
        raise ConfigError(f"{note_field} must be at most {MAX_NOTE_CHARS} printable characters")
    return name, note


def enrol(
    store_root: Path,
    name: str,
    note: str,
    feature: np.ndarray,
    model_id: str,
    source: str,
    track_id: int | None = None,
    created_by: str = "cli",
) -> Enrolled:
    """Put a person on the watch list with ``feature``, made by ``model_id`` (the callers make it with the store's
    own model: ``photo_feature``, ``track_feature``)."""
    vector = np.asarray(feature, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-6:
        raise ConfigError(f"the feature of {source} is empty; enrol from another photo or track")
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with closing(watchlist_db(store_root)) as connection:
        cursor = connection.execute(
            "INSERT INTO watchlist(name, note, source, track_id, model_id, feature, created_at, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (name, note, source, track_id, model_id, (vector / norm).astype(np.float32).tobytes(), created,
             created_by),
        )
        person_id = int(cursor.lastrowid or 0)
    return Enrolled(person_id, name, note, source, track_id, model_id, created, created_by)


def enrolled(store_root: Path) -> list[Enrolled]:
    """Everyone on the watch list, oldest first."""
    with closing(watchlist_db(store_root)) as connection:
        rows = connection.execute(
            "SELECT id, name, note, source, track_id, model_id, created_at, created_by FROM watchlist ORDER BY id"
        ).fetchall()
    return [Enrolled(*row) for row in rows]


def remove(store_root: Path, person_id: int, field: str = "ID") -> Enrolled:
    """Take person ``person_id`` off the watch list (their alerts stay, naming them); refused when there is none."""
    with closing(watchlist_db(store_root)) as connection:
        row = connection.execute(
            "SELECT id, name, note, source, track_id, model_id, created_at, created_by FROM watchlist WHERE id = ?",
            (person_id,),
        ).fetchone()
        if row is None:
            raise ConfigError(f"{field} {person_id}: nobody on the watch list has this id")
        connection.execute("DELETE FROM watchlist WHERE id = ?", (person_id,))
    return Enrolled(*row)


def watch_list_key(connection: sqlite3.Connection, model_id: str) -> tuple[int, int]:
    """Changes whenever someone is enrolled under ``model_id`` or removed (ids are never reused, features never
    edited): a listener re-reads the features only then, not every segment."""
    row = connection.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM watchlist WHERE model_id = ?",
                             (model_id,)).fetchone()
    return int(row[0]), int(row[1])


def watch_vectors(connection: sqlite3.Connection, model_id: str) -> WatchVectors:
    """The features of everyone enrolled under ``model_id`` (people of other models are left out)."""
    rows = connection.execute(
        "SELECT id, name, feature FROM watchlist WHERE model_id = ? ORDER BY id", (model_id,)
    ).fetchall()
    if not rows:
        return WatchVectors(np.zeros(0, np.int64), [], np.zeros((0, 0), np.float32))
    vectors = np.stack([np.frombuffer(row[2], dtype=np.float32) for row in rows])
    return WatchVectors(np.array([row[0] for row in rows], np.int64), [str(row[1]) for row in rows], vectors)


def track_feature(store: StoreReader, track_id: int, field: str = "--track") -> np.ndarray:
    """A stored track's vector (``search.track_query``, what ``reidkit search --track`` queries with); refused,
    naming ``field``, when there is no such track."""
    from reidkit.search.search import track_query

    try:
        return track_query(store, track_id)
    except StoreError:
        raise ConfigError(f"{field} {track_id}: the store has no such track; take one from a search's hits") from None


def photo_feature(
    store: StoreReader,
    image: np.ndarray,
    source: str,
    box: tuple[float, float, float, float] | None,
    detector: Callable[[], Detector],
    backend: str | None = None,
    box_option: str = "--box",
) -> tuple[np.ndarray, str]:
    """A photo's feature under the store's model, as ``reidkit search PHOTO`` makes its query (PyTorch by default,
    as there: one crop), and how the photo was read (``crop``, ``frame+box``, ``frame+detector``); refused when the
    store has no model yet."""
    from reidkit.inference.model_choice import choose_model
    from reidkit.search.query import query_crop
    from reidkit.store.rows import normalise_rows

    held = store.model
    if held is None:
        raise StoreError(f"store {store.root} holds no features yet; ingest or watch a camera before enrolling anyone")
    crop = query_crop(image, source, box, detector, box_option)
    choice = choose_model(None, held, backend=backend)
    extractor = choice.extractor
    store.check_model(extractor.model_id, extractor.feature_dim, choice.source)
    return normalise_rows(extractor([crop.image]))[0], crop.kind

