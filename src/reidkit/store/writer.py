"""Writing a person-search store: ``Store`` is a ``StoreReader`` that can also be opened for writing.

Writes go in this order: crop files (atomic renames), then one SQLite transaction per chunk of frames that also
advances the video's ``last_committed_frame`` and the store's ``commit_seq``, then the in-memory indexes, which are
saved to disk from time to time under a name carrying the commit they reflect. A crash at any point therefore
leaves SQLite consistent; on open, ``index_sync`` compares each index with SQLite (ids present, rows changed after
the index's commit) and repairs it, so a vector id never points at nothing. Crop files written for frames past the
last commit are orphans and are deleted when the video's ingest resumes (``remove_orphan_crops``).

A writable store holds an exclusive lock on the folder (``layout.LOCK_NAME``) so that two writers never
interleave; it creates the schema of a new store, and migrates an older one it knows (``schema.MIGRATIONS``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from reidkit.attribute_schema import aggregate_probabilities
from reidkit.errors import StoreBusyError, StoreError
from reidkit.store.backend_choice import store_location
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.layout import LOCK_NAME
from reidkit.store.reader import StoreReader
from reidkit.store.rows import NewDetection, VideoRecord, blob, epoch_seconds
from reidkit.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, store_write_error


class Store(StoreReader):
    """An open store that may write. ``writable`` stores hold the folder's exclusive lock, so that two writers never
    interleave; opened without it, a ``Store`` reads as a ``StoreReader`` does (SQLite read-only), for a caller that
    writes only when asked to (``reidkit purge --dry-run``)."""

    def __init__(self, root: Path, connection: sqlite3.Connection, writable: bool = False) -> None:
        super().__init__(root, connection, writable)
        self._lock_handle: int | None = None

    # --- opening and closing ------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: Path,
        writable: bool = False,
        create: bool = False,
        index: str | None = None,
        index_options: Mapping[str, str] | None = None,
    ) -> Store:
        """Open ``root``; ``create`` makes a new empty store there when none exists (ingest does, search does not).
        ``index`` / ``index_options``: the vector index backend and its options a new store records
        (``backend_choice``); for an existing one they must match what it records."""
        store = cls._connect(Path(root), writable, create)
        try:
            if writable:
                store._lock()
                store._prepare_schema()
            else:
                store._check_schema()
            store.location = store_location(store, index, index_options or {})
            store._load_vectors()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        super().close()
        if self._lock_handle is not None:
            os.close(self._lock_handle)
            self._lock_handle = None

    def _lock(self) -> None:
        try:
            handle = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
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

    def _prepare_schema(self) -> None:
        """Create the schema of a new store, or migrate an older one; then check the version as a reader does."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
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
        if version in MIGRATIONS:
            self._migrate(version)
        self._check_schema()

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

    def set_meta_values(self, values: dict[str, str]) -> None:
        """Inside a transaction: set ``meta`` keys."""
        for key, value in values.items():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                        (key, value, value))

    def _next_seq(self) -> int:
        """Inside a transaction: the seq this transaction's rows carry."""
        seq = self.commit_seq + 1
        self._set_meta("commit_seq", str(seq))
        return seq

    # --- the model ------------------------------------------------------------------------------------------------
    def require_model(self, model_id: str, feature_dim: int, source: str) -> None:
        """Adopt the model on first use; afterwards refuse any other (``check_model``)."""
        if self.model is None and self.writable:
            with self.transaction():
                self._set_meta("model_id", model_id)
                self._set_meta("feature_dim", str(feature_dim))
                self._set_meta("model_source", source)
            self.vectors.load(feature_dim)
            return
        self.check_model(model_id, feature_dim, source)

    def require_attributes(self, schema: str) -> None:
        """Record that this store's crops carry attributes of ``schema`` (a store holds one model, so one schema)."""
        held = self.meta_value("attribute_schema")
        if held is None:
            with self.transaction():
                self._set_meta("attribute_schema", schema)
        elif held != schema:
            raise StoreError(f"store {self.root} holds attributes of schema {held}, not {schema}")

    def set_attribute_schema(self, schema: str | None, track_ids: Iterable[int]) -> None:
        """Inside a reindex's transaction, once its crops' attributes are written: record the new model's schema
        (None: it has no head, and the store no attributes) and aggregate the tracks' attributes afresh."""
        if schema is None:
            self.db.execute("DELETE FROM meta WHERE key = 'attribute_schema'")
            return
        self._set_meta("attribute_schema", schema)
        self._aggregate_track_attributes(track_ids)

    def _aggregate_track_attributes(self, track_ids: Iterable[int]) -> None:
        """Recompute each track's attributes from its crops' (inside the caller's transaction)."""
        schema = self.attribute_schema
        if schema is None:
            return
        for track_id in track_ids:
            blobs = [row[0] for row in self.db.execute(
                "SELECT a.probabilities FROM detection_attributes a JOIN detections d ON d.id = a.detection_id "
                "WHERE d.track_id = ?", (track_id,))]
            if not blobs:
                continue
            crops = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
            self.db.execute(
                "INSERT INTO track_attributes(track_id, probabilities) VALUES (?, ?) "
                "ON CONFLICT(track_id) DO UPDATE SET probabilities = excluded.probabilities",
                (track_id, blob(aggregate_probabilities(schema, crops))),
            )

    # --- videos -------------------------------------------------------------------------------------------------
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
                cursor = self.db.execute(
                    "INSERT INTO detections(video_id, track_id, frame_index, time_s, x0, y0, x1, y1, score, quality, "
                    "crop_path, feature, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (video_id, track_id, det.frame_index, det.time_s, *det.box, det.score, det.quality,
                     det.crop_path, blob(det.feature), seq),
                )
                if det.attributes is not None:
                    self.db.execute("INSERT INTO detection_attributes(detection_id, probabilities) VALUES (?, ?)",
                                    (cursor.lastrowid, blob(det.attributes)))
            self.db.execute("UPDATE videos SET last_committed_frame = ? WHERE id = ?", (last_frame, video_id))
            self._aggregate_track_attributes(sorted(touched))
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

    def save_indexes(self, replan: bool = True) -> None:
        """Persist both indexes (re-planned first if the gallery outgrew its index kind, unless ``replan`` is off)."""
        self.vectors.save(replan)
