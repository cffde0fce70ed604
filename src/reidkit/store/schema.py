"""The store's SQLite schema and connection: what the tables are and how a store folder's database is opened.

SQLite is the store's source of truth (every feature is kept as a float32 BLOB); the FAISS indexes are caches rebuilt
from it (``index_sync``). ``SCHEMA_VERSION`` changes whenever a table changes, and a store of another version is
refused with a one-line reason rather than read wrongly; a writer migrates a store of an older version it knows
(``MIGRATIONS``), while a reader reads every version in ``READABLE_VERSIONS`` as it is, writing nothing.

Readers open the database read-only (``mode=ro``) and never switch its journal mode, so a store on read-only media
or in a folder shared read-only can be searched. Where SQLite cannot even create the WAL's shared-memory file
beside the database (a read-only folder), the store is opened ``immutable``: nothing can be changing it there.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from reidkit.errors import StoreError
from reidkit.store.layout import DB_NAME

SCHEMA_VERSION = "4"
READABLE_VERSIONS = ("1", "2", "3", "4")

# Added in version 2: how a recording that grew (a copy ingested while still being written) is recognised.
_FRAME_DIGESTS = """
CREATE TABLE frame_digests (
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    frame_index INTEGER NOT NULL,          -- frame 0 (the file's head) and every committed (sampled) frame
    digest TEXT NOT NULL,                  -- reidkit.video.frame_digest of that frame's RGB pixels
    PRIMARY KEY (video_id, frame_index)
);
"""
# Added in version 3: who is who, the store's tracks grouped into people by `reidkit cluster --db` (search/people.py).
# One clustering at a time: a re-run replaces all three tables' rows in one transaction. A track ingested after the
# clustering has no row in track_people until the next run; a deleted track takes its row with it (CASCADE).
_PEOPLE = """
CREATE TABLE clustering (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- at most one row: the clustering the people rows belong to
    model_id TEXT NOT NULL,                -- the features it grouped (the store's model when it ran)
    method TEXT NOT NULL,
    params TEXT NOT NULL,                  -- JSON: every parameter used, with how it was derived from the data
    created_at TEXT NOT NULL,
    commit_seq INTEGER NOT NULL            -- the store commit it saw: later commits hold tracks it never grouped
);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,                -- 1..N, numbered by first sighting
    confidence REAL NOT NULL               -- the mean of its tracks' confidences
);
CREATE TABLE track_people (
    track_id INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    confidence REAL NOT NULL               -- in [0, 1]: how sure the clustering is that the track is this person
);
CREATE INDEX track_people_person ON track_people(person_id);
"""
# Added in version 4: pedestrian attributes, where the store's model has an attribute head (meta attribute_schema
# names its reidkit.attribute_schema). Each crop's probabilities come from the pass that embedded it; a track's are
# its crops' confidence-weighted mean (attribute_schema.aggregate_probabilities), recomputed when the track grows.
_ATTRIBUTES = """
CREATE TABLE detection_attributes (
    detection_id INTEGER PRIMARY KEY REFERENCES detections(id) ON DELETE CASCADE,
    probabilities BLOB NOT NULL            -- float32, the schema's groups one after another, each summing to one
);
CREATE TABLE track_attributes (
    track_id INTEGER PRIMARY KEY REFERENCES tracks(id) ON DELETE CASCADE,
    probabilities BLOB NOT NULL            -- float32, as above, over the track's crops
);
"""
SCHEMA = """
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
""" + _FRAME_DIGESTS + _PEOPLE + _ATTRIBUTES
# From a version to the next: the SQL that upgrades a store a writer opens (readers read older versions as they are).
MIGRATIONS = {"1": _FRAME_DIGESTS, "2": _PEOPLE, "3": _ATTRIBUTES}


def connect(path: Path, writable: bool = True) -> sqlite3.Connection:
    """A connection to the store database at ``path``: WAL and foreign keys for a writer; read-only for a reader
    (``mode=ro``, or ``immutable`` where the folder does not let SQLite create the WAL's shared-memory file)."""
    if not writable:
        return _connect_read_only(path)
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"cannot write to store {path} ({exc}); ingest needs a writable --db folder (searching a read-only "
            "store works)"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, exc) from exc
    return connection


def _connect_read_only(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    failure: sqlite3.DatabaseError | None = None
    for suffix in ("", "&immutable=1"):
        try:
            connection = sqlite3.connect(uri + suffix, uri=True, isolation_level=None, timeout=30.0)
        except sqlite3.DatabaseError as exc:
            failure = exc
            continue
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError as exc:  # e.g. "unable to open database file": no -shm can be made here
            connection.close()
            failure = exc
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise _not_a_store(path, exc) from exc
    assert failure is not None
    raise _not_a_store(path, failure) from failure


def _not_a_store(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    return StoreError(f"{path} is not a readable reidkit store ({exc}); point --db at a store folder")


def store_write_error(root: Path, exc: sqlite3.OperationalError) -> StoreError:
    return StoreError(
        f"cannot write to store {root / DB_NAME} ({exc}); free disk space (or fix permissions) and rerun: "
        "the last committed chunk is kept and ingest resumes after it"
    )
