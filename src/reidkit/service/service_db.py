"""The service's own database, ``<store>/service.sqlite``: tokens, the audit log and the ingest jobs.

It is kept apart from the store's ``reidkit.sqlite`` so that the person-search data stays what ``reidkit ingest``
and ``reidkit search`` read and write, and so that a store copied elsewhere does not carry its access tokens along.
WAL lets the server, the ``reidkit token`` command and an ingest job write it at once. ``connect`` gives each thread
one connection, kept open: sqlite3 connections are not shared between threads, and closing the last one checkpoints
the WAL with an fsync, which made every audited request 20 ms slower.

The audit table refuses ``UPDATE`` and ``DELETE`` in SQLite itself (triggers), so not even a bug in the service can
rewrite history; only someone with the file can.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from reidkit.errors import StoreError

SERVICE_DB = "service.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lookup TEXT NOT NULL UNIQUE,       -- the secret's first characters: finds the row, proves nothing
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,                -- PBKDF2-HMAC-SHA256(secret, salt, iterations)
    iterations INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    expires_at TEXT                    -- UTC, ISO 8601; NULL: never (added in 0.x: see _migrate)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,                  -- UTC, ISO 8601
    token_id INTEGER,                  -- NULL for the command line and for failed authentications
    who TEXT NOT NULL,                 -- the token's name (or "cli", or "unauthenticated")
    role TEXT NOT NULL,
    action TEXT NOT NULL,              -- search, search.track, frame, track, audit, denied, token.create, ...
    target TEXT NOT NULL,              -- what was looked at or done, with the filters used
    hits INTEGER                       -- results returned, where the action has results
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,                  -- queued, running, done, failed, cancelled, interrupted
    phase TEXT NOT NULL,                   -- queued, loading, ingesting, ended
    video_path TEXT NOT NULL,              -- absolute path of the file to ingest (uploads: <db>/uploads/...)
    camera TEXT NOT NULL,
    start_time TEXT,                       -- ISO 8601 wall-clock time of the video's first frame, as given
    options TEXT NOT NULL,                 -- JSON of JobOptions
    checkpoint TEXT,                       -- the server's --checkpoint for new stores (None: the usual default)
    frames_done INTEGER NOT NULL DEFAULT 0,   -- sampled frames committed to the store
    frames_total INTEGER,                  -- sampled frames in the range (None while unknown)
    video_id INTEGER,                      -- the store's video row, once claimed
    message TEXT NOT NULL DEFAULT '',      -- one line: the result, or why it failed
    pid INTEGER,                           -- the worker process (and process group) while running
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_OPEN = threading.local()


def connect(root: Path) -> sqlite3.Connection:
    """This thread's autocommit connection to ``root``'s service database (created with its tables on first use).
    Do not close it."""
    path = (Path(root) / SERVICE_DB).absolute()
    cache: dict[Path, sqlite3.Connection] = _OPEN.__dict__.setdefault("connections", {})
    if path not in cache:
        cache[path] = _open(path)
    return cache[path]


def connect_new(root: Path) -> sqlite3.Connection:
    """A connection of its own, which the caller closes: for ingest workers and the job runner, whose short write
    transactions must not share a connection with whatever else the thread has open."""
    return _open((Path(root) / SERVICE_DB).absolute())


def _open(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.executescript(SCHEMA)
        _migrate(connection)
    except (OSError, sqlite3.OperationalError) as exc:
        raise StoreError(
            f"cannot open the service database {path} ({exc}); the store folder must be writable by the service"
        ) from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a reidkit service database ({exc}); move it away") from exc
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring a service database made by an older reidkit up to ``SCHEMA``: its tokens keep working, never expiring.
    Two processes opening it at once may both try; the loser finds the column there."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(tokens)")}
    if "expires_at" not in columns:
        try:
            connection.execute("ALTER TABLE tokens ADD COLUMN expires_at TEXT")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):
                raise
