"""The service's own database, ``<db>/service.sqlite``: tokens, the audit log and ingest jobs.

Kept apart from the store's ``reidkit.sqlite`` so that the store stays the person-search data alone. Every module
that owns a table creates it with ``CREATE TABLE IF NOT EXISTS`` on first use. WAL lets the API read while an ingest
worker writes its progress; each thread or process opens its own connection (``connect_state``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reidkit.errors import StoreError

STATE_DB = "service.sqlite"


def connect_state(db: Path) -> sqlite3.Connection:
    """A connection (autocommit; ``BEGIN IMMEDIATE`` for writes) to ``<db>/service.sqlite``, created if missing."""
    path = Path(db) / STATE_DB
    try:
        Path(db).mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the service database {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    return connection
