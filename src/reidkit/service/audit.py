"""The audit log: who searched for whom, who looked at which frame, who ingested, deleted or purged what.

Append-only: ``record`` inserts, nothing in reidkit updates or deletes, and SQLite's triggers (``service_db``)
refuse ``UPDATE`` and ``DELETE`` outright. Admins read it at ``GET /api/v1/audit``, newest first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reidkit.service.service_db import connect

if TYPE_CHECKING:
    from reidkit.search.retention import PurgeReport
    from reidkit.service.access import Caller

# What one entry may hold: room for every filter of a request; names a client chose go in ``quoted``, shortened.
MAX_TARGET_CHARS = 2000
MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    token_id: int | None
    who: str
    role: str
    action: str
    target: str
    hits: int | None


def quoted(name: str) -> str:
    """A name a client chose (a file name), quoted and cut to ``MAX_NAME_CHARS`` with its length said, so that an
    entry keeps every filter after it whatever the client sent."""
    if len(name) <= MAX_NAME_CHARS:
        return repr(name)
    return f"{name[:MAX_NAME_CHARS]!r}... ({len(name)} characters)"


def purge_target(report: PurgeReport, swept: list[str] | None = None) -> str:
    """A purge's entry, the same from the API and the command line: the moment, the videos, what went with them."""
    videos = ", ".join(str(video.id) for video in report.videos) or "none"
    target = f"before {report.before.isoformat()}: videos {videos}; {report.tracks} tracks, {report.detections} crops"
    return target + swept_text(swept or [])


def swept_text(swept: list[str]) -> str:
    """What an entry adds for the uploaded files a delete or purge swept away (``uploads.sweep``)."""
    return f"; {len(swept)} uploaded files no video or job needed deleted" if swept else ""


def record(db: Path, caller: Caller, action: str, target: str, hits: int | None = None) -> None:
    """Append one entry for a request by ``caller``."""
    connection = connect(db)
    _insert(connection, caller.token_id, caller.name, caller.role.name, action, target, hits)


def record_failure(db: Path, target: str) -> None:
    """Append a failed authentication (``target``: the request, the client's address and why, never the secret)."""
    _insert(connect(db), None, "unauthenticated", "none", "auth.failed", target, None)


def record_cli(connection: sqlite3.Connection, action: str, target: str) -> None:
    """Append one entry for something done on the command line (tokens, purges), on an open service connection."""
    _insert(connection, None, "cli", "admin", action, target, None)


def read(db: Path, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
    """Up to ``limit`` entries, newest first; ``before_id`` pages back from an entry."""
    query = "SELECT id, at, token_id, who, role, action, target, hits FROM audit"
    params: tuple[int, ...] = (limit,)
    if before_id is not None:
        query += " WHERE id < ?"
        params = (before_id, limit)
    connection = connect(db)
    rows = connection.execute(query + " ORDER BY id DESC LIMIT ?", params).fetchall()
    return [AuditEntry(*row) for row in rows]


def _insert(
    connection: sqlite3.Connection,
    token_id: int | None,
    who: str,
    role: str,
    action: str,
    target: str,
    hits: int | None,
) -> None:
    connection.execute(
        "INSERT INTO audit(at, token_id, who, role, action, target, hits) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (datetime.now(UTC).isoformat(timespec="milliseconds"), token_id, who, role, action,
         target if len(target) <= MAX_TARGET_CHARS else target[: MAX_TARGET_CHARS - 20] + " ... (cut short)", hits),
    )
