"""The person-search store: one folder holding SQLite metadata, JPEG crops and two vector indexes.

Layout of ``DIR``::

    reidkit.sqlite          cameras, videos, tracks, detections (+ every feature as a float32 BLOB), meta
    crops/v<video>/<frame>_<slot>.jpg
    vectors/crops.seq<N>.faiss, vectors/tracks.seq<N>.faiss    (FAISS; or vectors/milvus.db, or a Milvus server)

SQLite is the source of truth; the vector indexes are caches that can always be rebuilt from its BLOBs. Writes go
in this order: crop files (atomic renames), then one SQLite transaction per chunk of frames that also advances the
video's ``last_committed_frame`` and the store's ``commit_seq``, then the in-memory indexes, which are saved to
disk from time to time under a file name carrying the commit they reflect. A crash at any point therefore leaves
SQLite consistent; on open, ``_sync`` compares each index with SQLite (ids present, rows changed after the
index's commit) and repairs it, so a vector id never points at nothing. Crop files written for frames past the
last commit are orphans and are deleted when the video's ingest resumes.

The schema and connection live in ``schema``, the typed rows in ``rows``, the index sync in ``index_sync`` and the
choice of FAISS or Milvus, recorded per store, in ``backend_choice``.
Vector ids are SQLite row ids (``AUTOINCREMENT``, so a deleted id is never reused for another crop). Stored crop
paths are resolved through ``paths.stored_file``, which refuses any that would lead outside the store folder.
"""


from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from reidkit.errors import StoreBusyError, StoreError
from reidkit.search.backend_choice import store_location
from reidkit.search.index_sync import CROP_INDEX, TRACK_INDEX, StoreVectors
from reidkit.search.rows import (
    DETECTION_SELECT,
    TRACK_SELECT,
    VIDEO_SELECT,
    DetectionRow,
    ModelInfo,
    NewDetection,
    StoreSummary,
    TrackRow,
    VideoRecord,
    blob,
    detection_row,
    epoch_seconds,
    in_batches,
    normalise_rows,
    track_row,
    video_row,
)
from reidkit.search.paths import stored_file
from reidkit.search.vectors import IndexLocation, VectorIndex
from reidkit.search.schema import (
    DB_NAME,
    MIGRATIONS,
    READABLE_VERSIONS,
    SCHEMA,
    SCHEMA_VERSION,
    connect,
    store_write_error,
)

__all__ = ["CROP_INDEX", "DB_NAME", "TRACK_INDEX", "Store"]


class Store:
    """An open store. ``writable`` stores hold an exclusive lock on the folder so that two ingests never interleave;
    read-only stores (search) open SQLite read-only, repair their in-memory indexes but never write, and so also
    work on read-only media."""

    def __init__(self, root: Path, connection: sqlite3.Connection, writable: bool) -> None:
        self.root = root
        self.db = connection
        self.writable = writable
        self.location = IndexLocation("faiss", root / "vectors")  # what the store records, read on open
        self._lock_handle: int | None = None
        self.vectors = StoreVectors(self)

    # --- opening and closing ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, writable: bool = False, create: bool = False, index: str | None = None,
             milvus_uri: str | None = None) -> Store:
        """Open ``root``; ``create`` makes a new empty store there when none exists (ingest does, search does not).
        ``index`` / ``milvus_uri``: the vector index a new store records; for an existing one they must match it."""
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
        store = cls(root, connect(db_path, writable), writable)
        try:
            if writable:
                store._lock()
            store._ensure_schema()
            store.location = store_location(store, index, milvus_uri)
            model = store.model
            if model is not None:
                store.vectors.load(model.feature_dim)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.vectors.close()
        self.db.close()
        if self._lock_handle is not None:
            os.close(self._lock_handle)
            self._lock_handle = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lock(self) -> None:
        try:
            handle = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot write to store {self.root} ({exc.strerror or exc}); ingest needs a writable --db folder "
                "(searching a read-only store works)"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise StoreBusyError(
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
                "BEGIN IMMEDIATE;" + SCHEMA + f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');"
                "INSERT INTO meta VALUES ('commit_seq', '0'); COMMIT;"
            )
            try:
                self.db.executescript(script)
            except sqlite3.OperationalError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise store_write_error(self.root, exc) from exc
            return
        version = self.meta_value("schema_version")
        if self.writable and version in MIGRATIONS:
            self._migrate(version)
            version = self.meta_value("schema_version")
        if version != SCHEMA_VERSION and (self.writable or version not in READABLE_VERSIONS):
            raise StoreError(
                f"{self.root / DB_NAME} has store schema {version}, this reidkit reads {SCHEMA_VERSION}; "
                "re-ingest the videos into a new --db folder"
            )

    def _migrate(self, version: str) -> None:
        """Upgrade an older store in place, one version at a time, each step in one transaction."""
        while version in MIGRATIONS:
            following = str(int(version) + 1)
            with self.transaction():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._set_meta("schema_version", following)
            version = following

    # --- transactions and meta ----------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite write transaction; any failure rolls it back. Disk-full and I/O errors become ``StoreError``."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise store_write_error(self.root, exc) from exc
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
                raise store_write_error(self.root, exc) from exc
            raise

    def meta_value(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta_values(self, values: dict[str, str]) -> None:
        """Inside a transaction: set ``meta`` keys."""
        for key, value in values.items():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                        (key, value, value))

    @property
    def commit_seq(self) -> int:
        return int(self.meta_value("commit_seq") or 0)

    def _next_seq(self) -> int:
        """Inside a transaction: the seq this transaction's rows carry."""
        seq = self.commit_seq + 1
        self._set_meta("commit_seq", str(seq))
        return seq

    # --- the model ------------------------------------------------------------------------------------------------
    @property
    def model(self) -> ModelInfo | None:
        model_id = self.meta_value("model_id")
        if model_id is None:
            return None
        return ModelInfo(model_id, int(self.meta_value("feature_dim") or 0), self.meta_value("model_source") or "")

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
            self.vectors.load(feature_dim)
            return
        if held.model_id != model_id or held.feature_dim != feature_dim:
            raise StoreError(
                f"store {self.root} holds features of model {held.model_id} ({held.feature_dim}-d, "
                f"from {held.source}), not of {model_id} ({feature_dim}-d, from {source}); "
                f"use --checkpoint {held.source} with this store, or a new --db folder for the other model"
            )

    # --- cameras and videos -----------------------------------------------------------------------------------
    def cameras(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM cameras ORDER BY name")]

    def videos(self, fingerprint: str | None = None) -> list[VideoRecord]:
        query = VIDEO_SELECT + (" WHERE v.fingerprint = ?" if fingerprint else "") + " ORDER BY v.id"
        return [video_row(row) for row in self.db.execute(query, (fingerprint,) if fingerprint else ())]

    def video(self, video_id: int) -> VideoRecord:
        row = self.db.execute(VIDEO_SELECT + " WHERE v.id = ?", (video_id,)).fetchone()
        if row is None:
            raise StoreError(f"store {self.root} has no video {video_id}")
        return video_row(row)

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
        head_digest: str | None = None,
    ) -> VideoRecord:
        """A new video row (status ``ingesting``); ``head_digest`` (of the file's frame 0) lets a later ingest of
        the same recording, grown since, find it (``recordings_starting_with``)."""
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
            video_id = int(cursor.lastrowid or 0)
            if head_digest is not None:
                self._set_frame_digest(video_id, 0, head_digest)
            self._next_seq()
        return self.video(video_id)

    def extend_video(self, video_id: int, path: str, fingerprint: str, end_frame: int) -> VideoRecord:
        """Point a video row at the grown file of the same recording and reopen it for ingest past its last
        committed frame."""
        with self.transaction():
            self.db.execute(
                "UPDATE videos SET path = ?, fingerprint = ?, end_frame = ?, status = 'ingesting' WHERE id = ?",
                (path, fingerprint, end_frame, video_id),
            )
            self._next_seq()
        return self.video(video_id)

    def recordings_starting_with(self, head_digest: str) -> list[VideoRecord]:
        """Videos whose file's frame 0 had ``head_digest``: candidates for the same recording."""
        query = VIDEO_SELECT + (
            " WHERE v.id IN (SELECT video_id FROM frame_digests WHERE frame_index = 0 AND digest = ?) ORDER BY v.id"
        )
        return [video_row(row) for row in self.db.execute(query, (head_digest,))]

    def frame_digests(self, video_id: int) -> dict[int, str]:
        """``{frame index: digest}`` recorded for a video: frame 0 and every committed frame."""
        rows = self.db.execute("SELECT frame_index, digest FROM frame_digests WHERE video_id = ?", (video_id,))
        return {int(frame): str(digest) for frame, digest in rows}

    def _set_frame_digest(self, video_id: int, frame_index: int, digest: str) -> None:
        self.db.execute(
            "INSERT INTO frame_digests(video_id, frame_index, digest) VALUES (?, ?, ?) "
            "ON CONFLICT(video_id, frame_index) DO UPDATE SET digest = excluded.digest",
            (video_id, frame_index, digest),
        )

    def finish_video(self, video_id: int) -> None:
        with self.transaction():
            self.db.execute("UPDATE videos SET status = 'done' WHERE id = ?", (video_id,))
            self._next_seq()

    def delete_video(self, video_id: int) -> None:
        """Remove a video with its tracks, crops and vectors (``--force``). Rows go first, files after: a crash in
        between leaves only orphan files, which ``remove_orphan_crops`` sweeps."""
        detection_ids = self.ids_of("SELECT id FROM detections WHERE video_id = ?", (video_id,))
        track_ids = self.ids_of("SELECT id FROM tracks WHERE video_id = ?", (video_id,))
        with self.transaction():
            self.db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            self.db.execute("DELETE FROM cameras WHERE id NOT IN (SELECT camera_id FROM videos)")
            self._next_seq()
        if self.vectors.loaded:
            self.vectors.get(CROP_INDEX).remove(detection_ids)
            self.vectors.get(TRACK_INDEX).remove(track_ids)
        shutil.rmtree(self.crop_folder(video_id), ignore_errors=True)

    def crop_folder(self, video_id: int) -> Path:
        return self.root / "crops" / f"v{video_id:06d}"

    def crop_file(self, row: DetectionRow) -> Path:
        """The crop file of a stored detection, confined to the store folder (``paths.stored_file``)."""
        return stored_file(self.root, row.crop_path)

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
        self,
        video_id: int,
        detections: Sequence[NewDetection],
        last_frame: int,
        track_rows: dict[int, int],
        frame_digests: dict[int, str] | None = None,
    ) -> None:
        """Store a chunk of frames in one transaction and mark ``last_frame`` committed, then update the indexes.

        ``track_rows`` maps the run's tracker ids to track row ids; new tracks are added to it (only after the
        commit succeeds, so a failed chunk leaves it as it was). ``frame_digests`` (``{frame index: digest}`` of the
        chunk's frames) record what they looked like, so that a grown copy of the file can later be checked frame by
        frame against this ingest.
        """
        if not self.vectors.loaded:
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
                         max(det.quality, 1e-3), blob(weighted), seq),
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
                        (det.frame_index, det.time_s, max(det.quality, 1e-3), blob(total), seq, track_id),
                    )
                touched.add(track_id)
                self.db.execute(
                    "INSERT INTO detections(video_id, track_id, frame_index, time_s, x0, y0, x1, y1, score, quality, "
                    "crop_path, feature, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (video_id, track_id, det.frame_index, det.time_s, *det.box, det.score, det.quality,
                     det.crop_path, blob(det.feature), seq),
                )
            self.db.execute("UPDATE videos SET last_committed_frame = ? WHERE id = ?", (last_frame, video_id))
            for frame_index, digest in (frame_digests or {}).items():
                self._set_frame_digest(video_id, frame_index, digest)
        track_rows.update(new_rows)
        if detections:
            ids, vectors = self._rows("SELECT id, feature FROM detections WHERE seq = ?", (seq,))
            self.vectors.add(CROP_INDEX, ids, vectors)
            self._replace_tracks(np.array(sorted(touched), dtype=np.int64))

    def _replace_tracks(self, track_ids: np.ndarray) -> None:
        self.vectors.get(TRACK_INDEX).remove(track_ids)
        self.vectors.add(TRACK_INDEX, *self.track_vectors(track_ids))

    def save_indexes(self) -> None:
        """Persist both indexes (re-planned first if the gallery outgrew its index kind)."""
        self.vectors.save()

    # --- reading ------------------------------------------------------------------------------------------------
    def index(self, name: str) -> VectorIndex:
        if not self.vectors.loaded:
            raise StoreError(f"store {self.root} holds no features yet; ingest a video into it first")
        return self.vectors.get(name)

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
        for part, marks in in_batches(ids):
            rows = self.db.execute(DETECTION_SELECT + f" WHERE d.id IN {marks}", part)
            found.update((row.id, row) for row in map(detection_row, rows))
        return found

    def frame_detections(self, video_id: int, frame_index: int) -> list[DetectionRow]:
        """The crops stored for one frame of a video, in commit order."""
        query = DETECTION_SELECT + " WHERE d.video_id = ? AND d.frame_index = ? ORDER BY d.id"
        return [detection_row(row) for row in self.db.execute(query, (video_id, frame_index))]

    def track_detections(self, track_id: int) -> list[DetectionRow]:
        query = DETECTION_SELECT + " WHERE d.track_id = ? ORDER BY d.frame_index"
        return [detection_row(row) for row in self.db.execute(query, (track_id,))]

    def detection_features(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, features)`` of the stored crops among ``ids`` (missing ids are left out)."""
        return self._rows_in("SELECT id, feature FROM detections", ids)

    def track_vectors(self, track_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, normalised track features)`` of the stored tracks among ``track_ids``."""
        ids, sums = self._rows_in("SELECT id, feature_sum FROM tracks", track_ids)
        return ids, normalise_rows(sums)

    def tracks(self, track_ids: Iterable[int]) -> dict[int, TrackRow]:
        found: dict[int, TrackRow] = {}
        for part, marks in in_batches(track_ids):
            rows = self.db.execute(TRACK_SELECT + f" WHERE t.id IN {marks}", part)
            found.update((row.id, row) for row in map(track_row, rows))
        return found

    def track_detection_features(self, track_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(detection ids, their track ids, features)`` of every crop of the given tracks."""
        det_ids: list[int] = []
        owners: list[int] = []
        blobs: list[bytes] = []
        for part, marks in in_batches(track_ids):
            query = f"SELECT id, track_id, feature FROM detections WHERE track_id IN {marks}"
            for det_id, track_id, feature in self.db.execute(query, part):
                det_ids.append(det_id)
                owners.append(track_id)
                blobs.append(feature)
        return np.array(det_ids, dtype=np.int64), np.array(owners, dtype=np.int64), self._stack(blobs)

    def tracks_of_detections(self, ids: Iterable[int]) -> set[int]:
        """The track ids the given crops belong to (ids with no row are ignored)."""
        found: set[int] = set()
        for part, marks in in_batches(ids):
            found.update(row[0] for row in self.db.execute(f"SELECT track_id FROM detections WHERE id IN {marks}", part))
        return found

    def detection_ids(self) -> np.ndarray:
        return self.ids_of("SELECT id FROM detections ORDER BY id", ())

    def track_ids(self) -> np.ndarray:
        return self.ids_of("SELECT id FROM tracks ORDER BY id", ())

    def integrity_problems(self) -> list[str]:
        """What is wrong with the store (empty when consistent): SQLite's own check, index ids without a row,
        rows without a vector, detections past their video's last committed frame, missing crop files."""
        problems = [row[0] for row in self.db.execute("PRAGMA integrity_check") if row[0] != "ok"]
        problems += [f"foreign key: {row}" for row in self.db.execute("PRAGMA foreign_key_check")]
        for name, ids in ((CROP_INDEX, self.detection_ids()), (TRACK_INDEX, self.track_ids())):
            if not self.vectors.loaded:
                if len(ids):
                    problems.append(f"{name}: rows but no index")
                continue
            indexed = self.vectors.get(name).ids()
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
            try:
                present = stored_file(self.root, crop_path).is_file()
            except StoreError as exc:
                problems.append(str(exc))
                break
            if not present:
                problems.append(f"crop file {crop_path} is missing")
                break
        return problems

    # --- small SQL helpers --------------------------------------------------------------------------------------
    def count_rows(self, table: str) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def ids_of(self, sql: str, params: Sequence[object]) -> np.ndarray:
        return np.fromiter((row[0] for row in self.db.execute(sql, params)), dtype=np.int64)

    def _rows(self, sql: str, params: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        ids, blobs = [], []
        for row_id, feature in self.db.execute(sql, params):
            ids.append(row_id)
            blobs.append(feature)
        return np.array(ids, dtype=np.int64), self._stack(blobs)

    def _rows_in(self, select: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._rows(select + f" WHERE id IN {marks} ORDER BY id", part) for part, marks in in_batches(ids)]
        if not parts:
            return np.zeros(0, dtype=np.int64), self._stack([])
        return np.concatenate([p[0] for p in parts]), np.vstack([p[1] for p in parts])

    def _stack(self, blobs: list[bytes]) -> np.ndarray:  # (N, D) copied once; no blobs: (0, D) of the store's model
        if blobs:
            return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
        return np.zeros((0, self.model.feature_dim if self.model else 0), dtype=np.float32)
