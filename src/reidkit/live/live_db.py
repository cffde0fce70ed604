"""The store folder's ``live.sqlite``: live state written by the watcher, the service and the CLI at once.

The store's own database has one writer at a time (its ``.lock``); a watcher holds it for as long as it runs, while
the service must still enrol people, draw zones and register cameras. Those tables live here instead, in a
database that SQLite's own locking shares between processes (WAL, a busy timeout). Each module that owns tables
declares them with ``ensure_tables``; none of them depends on the store's schema version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

LIVE_DB_NAME = "live.sqlite"
_BUSY_TIMEOUT_MS = 10_000


def live_db_path(store_root: Path) -> Path:
    """Where a store's live database is (created on first use)."""
    return Path(store_root) / LIVE_DB_NAME


def open_live_db(store_root: Path) -> sqlite3.Connection:
    """A connection to the store's live database, made when missing; rows come back as ``sqlite3.Row``.

    ``check_same_thread=False``: the service hands a connection between its threads, each use under its own lock.
    """
    root = Path(store_root)
    if not root.is_dir():
        raise FileNotFoundError(f"store folder not found: {root}")
    connection = sqlite3.connect(live_db_path(root), timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                                 isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def ensure_tables(connection: sqlite3.Connection, ddl: str) -> None:
    """Create a module's tables and indexes where missing (every statement must say IF NOT EXISTS)."""
    connection.executescript(ddl)


SNAPSHOTS_FOLDER = "snapshots"


def snapshot_path(store_root: Path, camera: str) -> Path:
    """The latest full frame of a live camera (JPEG), kept fresh by its watcher: what zones are drawn on and heat
    maps are painted over. A camera name is checked (letters, digits, ``_-.``) before it gets here."""
    return Path(store_root) / SNAPSHOTS_FOLDER / f"{camera}.jpg"
