"""Reading a person-search store: the open store as searches, the service and reports see it, with no writer code.

A store folder (``layout``) holds SQLite metadata, JPEG crops and two vector indexes (crops, tracks). SQLite is the
source of truth; the vector indexes are caches that can always be rebuilt from its BLOBs (``index_sync``), and the
backend that holds them is recorded per store (``backend_choice``). A reader opens SQLite read-only (``schema``),
reads every schema version in ``READABLE_VERSIONS`` as it is, and repairs its in-memory indexes on open but never
writes, so it also works on read-only media. ``writer.Store`` adds writing (ingest, deletion, moves) on top.

Vector ids are SQLite row ids (``AUTOINCREMENT``, so a deleted id is never reused for another crop). Stored crop
paths are resolved through ``paths.stored_file``, which refuses any that would lead outside the store folder.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

import numpy as np

from reidkit.attribute_schema import ATTRIBUTE_SCHEMAS, AttributeSchema
from reidkit.errors import StoreError
from reidkit.store.backend_choice import recorded_location
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX, StoreVectors
from reidkit.store.layout import DB_NAME, crop_folder, vectors_folder
from reidkit.store.paths import stored_file
from reidkit.store.rows import (
    DETECTION_SELECT,
    TRACK_SELECT,
    VIDEO_SELECT,
    DetectionRow,
    ModelInfo,
    StoreSummary,
    TrackRow,
    VideoRecord,
    detection_row,
    in_batches,
    normalise_rows,
    track_row,
    video_row,
)
from reidkit.store.schema import READABLE_VERSIONS, SCHEMA_VERSION, connect
from reidkit.store.vector_index import DEFAULT_BACKEND, IndexLocation, VectorIndex


class StoreReader:
    """An open store, read-only: SQLite opened ``mode=ro``, indexes repaired in memory only (``Store`` writes)."""

    def __init__(self, root: Path, connection: sqlite3.Connection, writable: bool = False) -> None:
        self.root = root
        self.db = connection
        self.writable = writable
        self.location = IndexLocation(DEFAULT_BACKEND, vectors_folder(root))  # what the store records, read on open
        self.vectors = StoreVectors(self)

    # --- opening and closing ------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path) -> Self:
        """Open the store at ``root`` for reading; ``StoreError`` when there is none or it cannot be read."""
        store = cls._connect(Path(root), writable=False, create=False)
        try:
            store._check_schema()
            store.location = recorded_location(store)
            store._load_vectors()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _connect(cls, root: Path, writable: bool, create: bool) -> Self:
        """The store at ``root`` with its SQLite connection; ``create`` makes the folder when it holds no store."""
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
        return cls(root, connect(db_path, writable), writable)

    def _check_schema(self) -> None:
        """Refuse an empty database or a schema version this reidkit cannot read as it is."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            raise StoreError(f"{self.root / DB_NAME} is empty; ingest a video into it first")
        version = self.meta_value("schema_version")
        if version != SCHEMA_VERSION and (self.writable or version not in READABLE_VERSIONS):
            raise StoreError(
                f"{self.root / DB_NAME} has store schema {version}, this reidkit reads {SCHEMA_VERSION}; "
                "re-ingest the videos into a new --db folder"
            )

    def _load_vectors(self) -> None:
        """Load the vector indexes, repaired to match SQLite, once the store knows its model (and feature size)."""
        model = self.model
        if model is not None:
            self.vectors.load(model.feature_dim)

    def close(self) -> None:
        self.vectors.close()
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- meta and the model -------------------------------------------------------------------------------------
    def meta_value(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_values(self, prefix: str) -> dict[str, str]:
        """Every ``meta`` key starting with ``prefix``, with its value."""
        rows = self.db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {str(key): str(value) for key, value in rows}

    @property
    def commit_seq(self) -> int:
        return int(self.meta_value("commit_seq") or 0)

    @property
    def model(self) -> ModelInfo | None:
        model_id = self.meta_value("model_id")
        if model_id is None:
            return None
        return ModelInfo(model_id, int(self.meta_value("feature_dim") or 0), self.meta_value("model_source") or "",
                         self.meta_value("attribute_schema"))

    def check_model(self, model_id: str, feature_dim: int, source: str) -> None:
        """Refuse features of any model but the store's, since features of two models never compare."""
        held = self.model
        if held is None:
            raise StoreError(f"store {self.root} holds no features yet; ingest a video into it first")
        if held.model_id != model_id or held.feature_dim != feature_dim:
            raise StoreError(
                f"store {self.root} holds features of model {held.model_id} ({held.feature_dim}-d, "
                f"from {held.source}), not of {model_id} ({feature_dim}-d, from {source}); "
                f"use --checkpoint {held.source} with this store, or a new --db folder for the other model"
            )

    # --- attributes ---------------------------------------------------------------------------------------------
    @property
    def attribute_schema(self) -> AttributeSchema | None:
        """The attributes this store holds (its model's attribute head), None for a store made without them."""
        name = self.meta_value("attribute_schema")
        return ATTRIBUTE_SCHEMAS.get(name) if name else None

    def require_attribute_schema(self, wanted: str) -> AttributeSchema:
        """The store's attribute schema; a store without attributes is a ``StoreError`` saying how to add them
        (``wanted`` is how the caller asked: a CLI flag or an API field)."""
        schema = self.attribute_schema
        if schema is None:
            raise StoreError(
                f"{wanted}: store {self.root} holds no attributes (its model has no attribute head); re-embedding it "
                "with a model that has one (reidkit reindex, whose default model has one) adds them"
            )
        return schema

    def track_attributes(self, track_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(track ids, their attribute probabilities (N, W)) for ``track_ids``, or for every track with them."""
        select = "SELECT track_id, probabilities FROM track_attributes"
        if track_ids is None:
            return self._probability_rows(select + " ORDER BY track_id", ())
        parts = [self._probability_rows(select + f" WHERE track_id IN {marks} ORDER BY track_id", part)
                 for part, marks in in_batches(track_ids)]
        return self._joined(parts)

    def detection_attributes(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(crop ids, their attribute probabilities) for the crops of ``ids`` that have them."""
        select = "SELECT detection_id, probabilities FROM detection_attributes"
        parts = [self._probability_rows(select + f" WHERE detection_id IN {marks} ORDER BY detection_id", part)
                 for part, marks in in_batches(ids)]
        return self._joined(parts)

    def _probability_rows(self, sql: str, params: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        width = sum(self.attribute_schema.sizes) if self.attribute_schema else 0
        ids, blobs = [], []
        for row_id, probabilities in self.db.execute(sql, params):
            ids.append(row_id)
            blobs.append(probabilities)
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), width)
        return np.array(ids, dtype=np.int64), matrix

    def _joined(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:  # no ids asked for
            width = sum(self.attribute_schema.sizes) if self.attribute_schema else 0
            return np.zeros(0, dtype=np.int64), np.zeros((0, width), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.vstack([p[1] for p in parts])

    # --- cameras, videos and crops ------------------------------------------------------------------------------
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

    def crop_folder(self, video_id: int) -> Path:
        return crop_folder(self.root, video_id)

    def crop_file(self, row: DetectionRow) -> Path:
        """The crop file of a stored detection, confined to the store folder (``paths.stored_file``)."""
        return stored_file(self.root, row.crop_path)

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

    def detections_of_tracks(self, track_ids: Iterable[int]) -> list[DetectionRow]:
        """Every crop of the given tracks, by track then frame."""
        found: list[DetectionRow] = []
        for part, marks in in_batches(track_ids):
            query = DETECTION_SELECT + f" WHERE d.track_id IN {marks} ORDER BY d.track_id, d.frame_index"
            found += [detection_row(row) for row in self.db.execute(query, part)]
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
            rows = self.db.execute(f"SELECT track_id FROM detections WHERE id IN {marks}", part)
            found.update(row[0] for row in rows)
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
