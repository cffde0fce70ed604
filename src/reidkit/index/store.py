"""The person-search store: one folder holding SQLite metadata, JPEG crops and two vector indexes.

Layout of ``DIR``::

    reidkit.sqlite          cameras, videos, tracks, detections (+ every feature as a float32 BLOB), meta
    crops/v<video>/<frame>_<slot>.jpg
    vectors/crops.seq<N>.faiss, vectors/tracks.seq<N>.faiss

SQLite is the source of truth; the vector indexes are caches that can always be rebuilt from its BLOBs. Writes go
in this order: crop files (atomic renames), then one SQLite transaction per chunk of frames that also advances the
video's ``last_committed_frame`` and the store's ``commit_seq``, then the in-memory indexes, which are saved to
disk from time to time under a file name carrying the commit they reflect. A crash at any point therefore leaves
SQLite consistent; on open, ``_sync`` compares each index with SQLite (ids present, rows changed after the
index's commit) and repairs it, so a vector id never points at nothing. Crop files written for frames past the
last commit are orphans and are deleted when the video's ingest resumes.

Vector ids are SQLite row ids (``AUTOINCREMENT``, so a deleted id is never reused for another crop).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from reidkit.errors import ConfigError, StoreError
from reidkit.index.vectors import (
    VectorIndex,
    create_vector_index,
    load_vector_index,
    needs_new_plan,
    plan_index,
)

DB_NAME = "reidkit.sqlite"
SCHEMA_VERSION = "1"
CROP_INDEX, TRACK_INDEX = "crops", "tracks"
_READ_BATCH = 20_000

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cameras (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera_id INTEGER NOT NULL REFERENCES cameras(id),
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    start_frame INTEGER NOT NULL,
    end_frame INTEGER NOT NULL,            -- exclusive
    every_n INTEGER NOT NULL,
    detector TEXT NOT NULL,
    start_time TEXT,                       -- ISO 8601 as given, NULL when unknown
    start_epoch REAL,                      -- the same in seconds since 1970 (naive times read as UTC)
    fps REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ingesting', 'done')),
    last_committed_frame INTEGER NOT NULL,  -- -1 before the first chunk
    created_at TEXT NOT NULL
);
CREATE INDEX videos_fingerprint ON videos(fingerprint);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    first_frame INTEGER NOT NULL,
    last_frame INTEGER NOT NULL,
    first_time_s REAL NOT NULL,
    last_time_s REAL NOT NULL,
    num_crops INTEGER NOT NULL,
    quality_sum REAL NOT NULL,
    feature_sum BLOB NOT NULL,             -- quality-weighted sum of crop features; the track vector is it normalised
    seq INTEGER NOT NULL                   -- store commit that last changed the row
);
CREATE INDEX tracks_video ON tracks(video_id);
CREATE INDEX tracks_seq ON tracks(seq);
CREATE TABLE detections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    frame_index INTEGER NOT NULL,
    time_s REAL NOT NULL,
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    score REAL NOT NULL,
    quality REAL NOT NULL,
    crop_path TEXT NOT NULL,               -- relative to the store folder
    feature BLOB NOT NULL,                 -- L2-normalised float32
    seq INTEGER NOT NULL
);
CREATE INDEX detections_track ON detections(track_id);
CREATE INDEX detections_video_frame ON detections(video_id, frame_index);
CREATE INDEX detections_seq ON detections(seq);
"""


@dataclass(frozen=True)
class ModelInfo:
    """The one model whose features a store holds: ``source`` says how to load it again (checkpoint path, or
    ``imagenet:<model>/<backbone>`` for an untrained model)."""

    model_id: str
    feature_dim: int
    source: str


@dataclass(frozen=True)
class VideoRecord:
    id: int
    camera: str
    path: str
    fingerprint: str
    start_frame: int
    end_frame: int
    every_n: int
    detector: str
    start_time: datetime | None
    fps: float
    width: int
    height: int
    status: str
    last_committed_frame: int


@dataclass(frozen=True)
class NewDetection:
    """One tracked crop ready to commit; ``track_key`` is the tracker's id within the current run."""

    track_key: int
    frame_index: int
    time_s: float
    box: tuple[float, float, float, float]
    score: float
    quality: float
    crop_path: str
    feature: np.ndarray


@dataclass(frozen=True)
class DetectionRow:
    """A stored crop with what search results show about it."""

    id: int
    track_id: int
    video_id: int
    camera: str
    frame_index: int
    time_s: float
    wall_time: datetime | None
    box: tuple[float, float, float, float]
    score: float
    quality: float
    crop_path: str


@dataclass(frozen=True)
class TrackRow:
    id: int
    video_id: int
    camera: str
    first_frame: int
    last_frame: int
    first_time_s: float
    last_time_s: float
    first_seen: datetime | None
    last_seen: datetime | None
    num_crops: int


@dataclass(frozen=True)
class StoreSummary:
    cameras: int
    videos: int
    videos_done: int
    tracks: int
    detections: int
    model: ModelInfo | None


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time; ``option`` names the flag in the error. Naive times are kept naive (and read as UTC)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO 8601 time; write e.g. 2024-05-01T09:30:00") from None


def epoch_seconds(moment: datetime) -> float:
    """Seconds since 1970 UTC; a naive time is taken as UTC so that naive start times and filters compare."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def _in_batches(ids: Iterable[int]) -> Iterator[tuple[list[int], str]]:
    """``ids`` in slices of at most 900, each with its ``(?,?,...)`` list: SQLite limits bound parameters."""
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), 900):
        part = ids[start : start + 900]
        yield part, "(" + ",".join("?" * len(part)) + ")"


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows (a zero row stays zero rather than becoming NaN)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class Store:
    """An open store. ``writable`` stores hold an exclusive lock on the folder so that two ingests never interleave;
    read-only stores (search) repair their in-memory indexes but never write."""

    def __init__(self, root: Path, connection: sqlite3.Connection, writable: bool, backend: str) -> None:
        self.root = root
        self.db = connection
        self.writable = writable
        self.backend = backend
        self._lock_handle: int | None = None
        self._indexes: dict[str, VectorIndex] = {}

    # --- opening and closing ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, writable: bool = False, create: bool = False, backend: str = "faiss") -> Store:
        """Open ``root``; ``create`` makes a new empty store there when none exists (ingest does, search does not)."""
        root = Path(root)
        db_path = root / DB_NAME
        if not db_path.is_file():
            if not create:
                what = "does not exist" if not root.exists() else f"holds no {DB_NAME}"
                raise StoreError(
                    f"person-search store {root} {what}; "
                    f"build one with `reidkit ingest VIDEO --camera NAME --db {root}`"
                )
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store folder {root}: {exc.strerror or exc}") from exc
        store = cls(root, _connect(db_path), writable, backend)
        try:
            if writable:
                store._lock()
            store._ensure_schema()
            model = store.model
            if model is not None:
                store._load_indexes(model.feature_dim)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.db.close()
        if self._lock_handle is not None:
            os.close(self._lock_handle)
            self._lock_handle = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> None:
        handle = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise StoreError(
                f"another `reidkit ingest` is writing to {self.root}; wait for it to finish (one ingest per store)"
            ) from None
        self._lock_handle = handle

    def _ensure_schema(self) -> None:
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if not self.writable:
                raise StoreError(f"{self.root / DB_NAME} is empty; ingest a video into it first")
            # One script, one transaction: a crash here leaves no half-made schema behind.
            script = (
                "BEGIN IMMEDIATE;" + _SCHEMA + f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                "INSERT INTO meta VALUES ('commit_seq', '0'); COMMIT;"
            )
            try:
                self.db.executescript(script)
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise _store_write_error(self.root, exc) from exc
            return
        version = self._meta("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.root / DB_NAME} has store schema {version}, this reidkit reads {SCHEMA_VERSION}; "
                "re-ingest the videos into a new --db folder"
            )

    # --- transactions and meta ----------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite write transaction; any failure rolls it back. Disk-full and I/O errors become ``StoreError``."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _store_write_error(self.root, exc) from exc
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite has already rolled back after an I/O error
            if isinstance(exc, sqlite3.OperationalError):
                raise _store_write_error(self.root, exc) from exc
            raise

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                        (key, value, value))

    @property
    def commit_seq(self) -> int:
        return int(self._meta("commit_seq") or 0)

    def _next_seq(self) -> int:
        """Inside a transaction: the seq this transaction's rows carry."""
        seq = self.commit_seq + 1
        self._set_meta("commit_seq", str(seq))
        return seq

    # --- the model ------------------------------------------------------------------------------------------------
    @property
    def model(self) -> ModelInfo | None:
        model_id = self._meta("model_id")
        if model_id is None:
            return None
        return ModelInfo(model_id, int(self._meta("feature_dim") or 0), self._meta("model_source") or "")

    def require_model(self, model_id: str, feature_dim: int, source: str) -> None:
        """Adopt the model on first use; afterwards refuse any other, since features of two models never compare."""
        held = self.model
        if held is None:
            if not self.writable:
                raise StoreError(f"store {self.root} holds no features yet; ingest a video into it first")
            with self.transaction():
                self._set_meta("model_id", model_id)
                self._set_meta("feature_dim", str(feature_dim))
                self._set_meta("model_source", source)
            self._load_indexes(feature_dim)
            return
        if held.model_id != model_id or held.feature_dim != feature_dim:
            raise StoreError(
                f"store {self.root} holds features of model {held.model_id} ({held.feature_dim}-d, "
                f"from {held.source}), not of {model_id} ({feature_dim}-d, from {source}); "
                f"use --checkpoint {held.source} with this store, or a new --db folder for the other model"
            )

    # --- cameras and videos -----------------------------------------------------------------------------------
    def videos(self, fingerprint: str | None = None) -> list[VideoRecord]:
        query = _VIDEO_SELECT + (" WHERE v.fingerprint = ?" if fingerprint else "") + " ORDER BY v.id"
        return [_video(row) for row in self.db.execute(query, (fingerprint,) if fingerprint else ())]

    def video(self, video_id: int) -> VideoRecord:
        row = self.db.execute(_VIDEO_SELECT + " WHERE v.id = ?", (video_id,)).fetchone()
        if row is None:
            raise StoreError(f"store {self.root} has no video {video_id}")
        return _video(row)

    def add_video(
        self,
        camera: str,
        path: str,
        fingerprint: str,
        start_frame: int,
        end_frame: int,
        every_n: int,
        detector: str,
        start_time: datetime | None,
        fps: float,
        width: int,
        height: int,
    ) -> VideoRecord:
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO cameras(name) VALUES (?)", (camera,))
            (camera_id,) = self.db.execute("SELECT id FROM cameras WHERE name = ?", (camera,)).fetchone()
            cursor = self.db.execute(
                "INSERT INTO videos(camera_id, path, fingerprint, start_frame, end_frame, every_n, detector, "
                "start_time, start_epoch, fps, width, height, status, last_committed_frame, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ingesting', -1, ?)",
                (
                    camera_id, path, fingerprint, start_frame, end_frame, every_n, detector,
                    None if start_time is None else start_time.isoformat(),
                    None if start_time is None else epoch_seconds(start_time),
                    fps, width, height, datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
            self._next_seq()
        return self.video(int(cursor.lastrowid or 0))

    def finish_video(self, video_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE videos SET status = 'done' WHERE id = ?", (video_id,))
            self._next_seq()

    def delete_video(self, video_id: int) -> None:
        """Remove a video with its tracks, crops and vectors (``--force``). Rows go first, files after: a crash in
        between leaves only orphan files, which ``remove_orphan_crops`` sweeps."""
        detection_ids = self._ids("SELECT id FROM detections WHERE video_id = ?", (video_id,))
        track_ids = self._ids("SELECT id FROM tracks WHERE video_id = ?", (video_id,))
        with self.transaction():
            self.db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            self.db.execute("DELETE FROM cameras WHERE id NOT IN (SELECT camera_id FROM videos)")
            self._next_seq()
        if self._indexes:
            self._indexes[CROP_INDEX].remove(detection_ids)
            self._indexes[TRACK_INDEX].remove(track_ids)
        shutil.rmtree(self.crop_folder(video_id), ignore_errors=True)

    def crop_folder(self, video_id: int) -> Path:
        return self.root / "crops" / f"v{video_id:06d}"

    def remove_orphan_crops(self, video: VideoRecord) -> int:
        """Delete crop files of ``video`` past its last committed frame (written before a crash, never committed)
        and half-written temporaries; returns how many went."""
        folder = self.crop_folder(video.id)
        if not folder.is_dir():
            return 0
        removed = 0
        for path in folder.iterdir():
            frame_text = path.name.split("_", 1)[0]
            orphan = path.name.startswith(".") or not frame_text.isdigit()
            if orphan or int(frame_text) > video.last_committed_frame:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # --- writing chunks -------------------------------------------------------------------------------------------
    def commit_chunk(
        self, video_id: int, detections: Sequence[NewDetection], last_frame: int, track_rows: dict[int, int]
    ) -> None:
        """Store a chunk of frames in one transaction and mark ``last_frame`` committed, then update the indexes.

        ``track_rows`` maps the run's tracker ids to track row ids; new tracks are added to it (only after the
        commit succeeds, so a failed chunk leaves it as it was).
        """
        if not self._indexes:
            raise StoreError(f"store {self.root} has no model yet; call require_model before committing features")
        new_rows: dict[int, int] = {}
        touched: set[int] = set()
        with self.transaction():
            seq = self._next_seq()
            for det in detections:
                track_id = track_rows.get(det.track_key) or new_rows.get(det.track_key)
                weighted = det.feature * np.float32(max(det.quality, 1e-3))
                if track_id is None:
                    cursor = self.db.execute(
                        "INSERT INTO tracks(video_id, first_frame, last_frame, first_time_s, last_time_s, num_crops, "
                        "quality_sum, feature_sum, seq) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                        (video_id, det.frame_index, det.frame_index, det.time_s, det.time_s,
                         max(det.quality, 1e-3), _blob(weighted), seq),
                    )
                    track_id = int(cursor.lastrowid or 0)
                    new_rows[det.track_key] = track_id
                else:
                    (feature_sum,) = self.db.execute(
                        "SELECT feature_sum FROM tracks WHERE id = ?", (track_id,)
                    ).fetchone()
                    total = np.frombuffer(feature_sum, dtype=np.float32) + weighted
                    self.db.execute(
                        "UPDATE tracks SET last_frame = ?, last_time_s = ?, num_crops = num_crops + 1, "
                        "quality_sum = quality_sum + ?, feature_sum = ?, seq = ? WHERE id = ?",
                        (det.frame_index, det.time_s, max(det.quality, 1e-3), _blob(total), seq, track_id),
                    )
                touched.add(track_id)
                self.db.execute(
                    "INSERT INTO detections(video_id, track_id, frame_index, time_s, x0, y0, x1, y1, score, quality, "
                    "crop_path, feature, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (video_id, track_id, det.frame_index, det.time_s, *det.box, det.score, det.quality,
                     det.crop_path, _blob(det.feature), seq),
                )
            self.db.execute("UPDATE videos SET last_committed_frame = ? WHERE id = ?", (last_frame, video_id))
        track_rows.update(new_rows)
        if detections:
            ids, vectors = self._rows("SELECT id, feature FROM detections WHERE seq = ?", (seq,))
            self._indexes[CROP_INDEX].add(ids, vectors)
            self._replace_tracks(np.array(sorted(touched), dtype=np.int64))

    def _replace_tracks(self, track_ids: np.ndarray) -> None:
        index = self._indexes[TRACK_INDEX]
        index.remove(track_ids)
        ids, vectors = self.track_vectors(track_ids)
        index.add(ids, vectors)

    def save_indexes(self) -> None:
        """Persist both indexes (re-planned first if the gallery outgrew its index kind)."""
        seq = self.commit_seq
        for name, table in ((CROP_INDEX, "detections"), (TRACK_INDEX, "tracks")):
            index = self._indexes.get(name)
            if index is None:
                continue
            count = self._count(table)
            if needs_new_plan(index, count):
                index = self._rebuild(name, index.dim)
                self._indexes[name] = index
            if index.commit_seq != seq:
                index.save(seq)

    # --- reading ------------------------------------------------------------------------------------------------
    def index(self, name: str) -> VectorIndex:
        if name not in self._indexes:
            raise StoreError(f"store {self.root} holds no features yet; ingest a video into it first")
        return self._indexes[name]

    def summary(self) -> StoreSummary:
        def count(sql: str) -> int:
            return int(self.db.execute(sql).fetchone()[0])

        return StoreSummary(
            cameras=count("SELECT COUNT(*) FROM cameras"),
            videos=count("SELECT COUNT(*) FROM videos"),
            videos_done=count("SELECT COUNT(*) FROM videos WHERE status = 'done'"),
            tracks=count("SELECT COUNT(*) FROM tracks"),
            detections=count("SELECT COUNT(*) FROM detections"),
            model=self.model,
        )

    def detections(self, ids: Iterable[int]) -> dict[int, DetectionRow]:
        found: dict[int, DetectionRow] = {}
        for part, marks in _in_batches(ids):
            rows = self.db.execute(_DETECTION_SELECT + f" WHERE d.id IN {marks}", part)
            found.update((row.id, row) for row in map(_detection, rows))
        return found

    def track_detections(self, track_id: int) -> list[DetectionRow]:
        query = _DETECTION_SELECT + " WHERE d.track_id = ? ORDER BY d.frame_index"
        return [_detection(row) for row in self.db.execute(query, (track_id,))]

    def detection_features(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, features)`` of the stored crops among ``ids`` (missing ids are left out)."""
        return self._rows_in("SELECT id, feature FROM detections", ids)

    def track_vectors(self, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, normalised track features)`` of the stored tracks among ``track_ids``."""
        ids, sums = self._rows_in("SELECT id, feature_sum FROM tracks", track_ids)
        return ids, normalise_rows(sums)

    def tracks(self, track_ids: Iterable[int]) -> dict[int, TrackRow]:
        found: dict[int, TrackRow] = {}
        for part, marks in _in_batches(track_ids):
            rows = self.db.execute(_TRACK_SELECT + f" WHERE t.id IN {marks}", part)
            found.update((row.id, row) for row in map(_track, rows))
        return found

    def track_detection_features(self, track_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(detection ids, their track ids, features)`` of every crop of the given tracks."""
        det_ids, owners, vectors = [], [], []
        for part, marks in _in_batches(track_ids):
            query = f"SELECT id, track_id, feature FROM detections WHERE track_id IN {marks}"
            for det_id, track_id, blob in self.db.execute(query, part):
                det_ids.append(det_id)
                owners.append(track_id)
                vectors.append(np.frombuffer(blob, dtype=np.float32))
        dim = self.model.feature_dim if self.model else 0
        return (
            np.array(det_ids, dtype=np.int64),
            np.array(owners, dtype=np.int64),
            np.vstack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32),
        )

    def detection_ids(self) -> np.ndarray:
        return self._ids("SELECT id FROM detections ORDER BY id", ())

    def track_ids(self) -> np.ndarray:
        return self._ids("SELECT id FROM tracks ORDER BY id", ())

    def integrity_problems(self) -> list[str]:
        """What is wrong with the store (empty when consistent): SQLite's own check, index ids without a row,
        rows without a vector, detections past their video's last committed frame, missing crop files."""
        problems = [row[0] for row in self.db.execute("PRAGMA integrity_check") if row[0] != "ok"]
        problems += [f"foreign key: {row}" for row in self.db.execute("PRAGMA foreign_key_check")]
        for name, ids in ((CROP_INDEX, self.detection_ids()), (TRACK_INDEX, self.track_ids())):
            if name not in self._indexes:
                if len(ids):
                    problems.append(f"{name}: rows but no index")
                continue
            indexed = self._indexes[name].ids()
            dangling = np.setdiff1d(indexed, ids)
            missing = np.setdiff1d(ids, indexed)
            if len(dangling):
                problems.append(f"{name}: {len(dangling)} vector ids point at no row")
            if len(missing):
                problems.append(f"{name}: {len(missing)} rows have no vector")
            if len(indexed) != len(np.unique(indexed)):
                problems.append(f"{name}: duplicate vector ids")
        late = self.db.execute(
            "SELECT COUNT(*) FROM detections d JOIN videos v ON v.id = d.video_id "
            "WHERE d.frame_index > v.last_committed_frame"
        ).fetchone()[0]
        if late:
            problems.append(f"{late} detections lie past their video's last committed frame")
        for (crop_path,) in self.db.execute("SELECT crop_path FROM detections"):
            if not (self.root / crop_path).is_file():
                problems.append(f"crop file {crop_path} is missing")
                break
        return problems

    # --- index synchronisation ----------------------------------------------------------------------------------
    def _load_indexes(self, dim: int) -> None:
        folder = self.root / "vectors"
        for name, table in ((CROP_INDEX, "detections"), (TRACK_INDEX, "tracks")):
            index = load_vector_index(self.backend, folder, name, dim)
            if index is None or index.commit_seq > self.commit_seq:
                index = self._rebuild(name, dim)
            else:
                self._sync(index, name, table)
            self._indexes[name] = index

    def _sync(self, index: VectorIndex, name: str, table: str) -> None:
        """Bring a loaded index in step with SQLite: drop ids without a row, (re)add rows changed since its commit.

        When the index claims the current commit, matching counts are taken as proof (cheap for large stores); a
        count mismatch falls through to the full id comparison.
        """
        if index.commit_seq == self.commit_seq and index.count == self._count(table):
            return
        stored = self._ids(f"SELECT id FROM {table} ORDER BY id", ())
        indexed = index.ids()
        changed = self._ids(f"SELECT id FROM {table} WHERE seq > ? ORDER BY id", (index.commit_seq,))
        stale = np.union1d(np.setdiff1d(indexed, stored), np.intersect1d(indexed, changed))
        missing = np.union1d(np.setdiff1d(stored, indexed), changed)
        index.remove(stale)
        for start in range(0, len(missing), _READ_BATCH):
            part = missing[start : start + _READ_BATCH]
            ids, vectors = self.track_vectors(part) if name == TRACK_INDEX else self.detection_features(part)
            index.add(ids, vectors)

    def _rebuild(self, name: str, dim: int) -> VectorIndex:
        """A fresh index of ``name`` from SQLite's BLOBs, laid out for the current gallery size."""
        table = "detections" if name == CROP_INDEX else "tracks"
        all_ids = self._ids(f"SELECT id FROM {table} ORDER BY id", ())
        plan = plan_index(len(all_ids), dim)
        training = None
        if plan.training_size:
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(all_ids, size=min(plan.training_size, len(all_ids)), replace=False))
            training = self._vectors_of(name, sample)[1]
        index = create_vector_index(self.backend, self.root / "vectors", name, dim, plan, training)
        for start in range(0, len(all_ids), _READ_BATCH):
            index.add(*self._vectors_of(name, all_ids[start : start + _READ_BATCH]))
        return index

    def _vectors_of(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.track_vectors(ids) if name == TRACK_INDEX else self.detection_features(ids)

    # --- small SQL helpers --------------------------------------------------------------------------------------
    def _count(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def _ids(self, sql: str, params: Sequence[object]) -> np.ndarray:
        return np.fromiter((row[0] for row in self.db.execute(sql, params)), dtype=np.int64)

    def _rows(self, sql: str, params: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        ids, vectors = [], []
        for row_id, blob in self.db.execute(sql, params):
            ids.append(row_id)
            vectors.append(np.frombuffer(blob, dtype=np.float32))
        dim = self.model.feature_dim if self.model else 0
        return np.array(ids, dtype=np.int64), (np.vstack(vectors) if vectors else np.zeros((0, dim), np.float32))

    def _rows_in(self, select: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        all_ids, all_vectors = [], []
        for part, marks in _in_batches(ids):
            got_ids, got = self._rows(select + f" WHERE id IN {marks} ORDER BY id", part)
            all_ids.append(got_ids)
            all_vectors.append(got)
        dim = self.model.feature_dim if self.model else 0
        if not all_ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(all_ids), np.vstack(all_vectors)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable reidkit store ({exc}); point --db at a store folder") from exc
    return connection


def _store_write_error(root: Path, exc: sqlite3.OperationalError) -> StoreError:
    return StoreError(
        f"cannot write to store {root / DB_NAME} ({exc}); free disk space (or fix permissions) and rerun: "
        "the last committed chunk is kept and ingest resumes after it"
    )


_VIDEO_SELECT = (
    "SELECT v.id, c.name, v.path, v.fingerprint, v.start_frame, v.end_frame, v.every_n, v.detector, v.start_time, "
    "v.fps, v.width, v.height, v.status, v.last_committed_frame FROM videos v JOIN cameras c ON c.id = v.camera_id"
)
_DETECTION_SELECT = (
    "SELECT d.id, d.track_id, d.video_id, c.name, d.frame_index, d.time_s, v.start_time, d.x0, d.y0, d.x1, d.y1, "
    "d.score, d.quality, d.crop_path FROM detections d JOIN videos v ON v.id = d.video_id "
    "JOIN cameras c ON c.id = v.camera_id"
)
_TRACK_SELECT = (
    "SELECT t.id, t.video_id, c.name, t.first_frame, t.last_frame, t.first_time_s, t.last_time_s, v.start_time, "
    "t.num_crops FROM tracks t JOIN videos v ON v.id = t.video_id JOIN cameras c ON c.id = v.camera_id"
)


def _video(row: Sequence[object]) -> VideoRecord:
    start = row[8]
    return VideoRecord(
        id=int(row[0]),  # type: ignore[arg-type]
        camera=str(row[1]),
        path=str(row[2]),
        fingerprint=str(row[3]),
        start_frame=int(row[4]),  # type: ignore[arg-type]
        end_frame=int(row[5]),  # type: ignore[arg-type]
        every_n=int(row[6]),  # type: ignore[arg-type]
        detector=str(row[7]),
        start_time=None if start is None else datetime.fromisoformat(str(start)),
        fps=float(row[9]),  # type: ignore[arg-type]
        width=int(row[10]),  # type: ignore[arg-type]
        height=int(row[11]),  # type: ignore[arg-type]
        status=str(row[12]),
        last_committed_frame=int(row[13]),  # type: ignore[arg-type]
    )


def wall_time(start_time: object, time_s: float) -> datetime | None:
    """``start_time`` (ISO text or None) plus ``time_s`` seconds into the video."""
    if start_time is None:
        return None
    return datetime.fromisoformat(str(start_time)) + timedelta(seconds=time_s)


def _detection(row: Sequence[object]) -> DetectionRow:
    time_s = float(row[5])  # type: ignore[arg-type]
    return DetectionRow(
        id=int(row[0]),  # type: ignore[arg-type]
        track_id=int(row[1]),  # type: ignore[arg-type]
        video_id=int(row[2]),  # type: ignore[arg-type]
        camera=str(row[3]),
        frame_index=int(row[4]),  # type: ignore[arg-type]
        time_s=time_s,
        wall_time=wall_time(row[6], time_s),
        box=(float(row[7]), float(row[8]), float(row[9]), float(row[10])),  # type: ignore[arg-type]
        score=float(row[11]),  # type: ignore[arg-type]
        quality=float(row[12]),  # type: ignore[arg-type]
        crop_path=str(row[13]),
    )


def _track(row: Sequence[object]) -> TrackRow:
    first_s, last_s = float(row[5]), float(row[6])  # type: ignore[arg-type]
    return TrackRow(
        id=int(row[0]),  # type: ignore[arg-type]
        video_id=int(row[1]),  # type: ignore[arg-type]
        camera=str(row[2]),
        first_frame=int(row[3]),  # type: ignore[arg-type]
        last_frame=int(row[4]),  # type: ignore[arg-type]
        first_time_s=first_s,
        last_time_s=last_s,
        first_seen=wall_time(row[7], first_s),
        last_seen=wall_time(row[7], last_s),
        num_crops=int(row[8]),  # type: ignore[arg-type]
    )
