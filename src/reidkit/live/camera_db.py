"""The live ingest's tables in ``live.sqlite``: cameras registered over the API, each camera's health, its gaps.

Health is one row per camera, replaced every second or so by the watcher and read by the service (the web page's
camera panel). A gap is a stretch of time a camera's footage is missing: opened when its stream drops (or a watcher
restarts after being killed), closed by the first frame of the next connection. Registered cameras keep their
URL as given (a password included: the watcher needs it to connect); everything shown goes through
``sources.public_url``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from reidkit.live.live_db import ensure_tables

_DDL = """
CREATE TABLE IF NOT EXISTS live_cameras (
    name TEXT PRIMARY KEY, url TEXT NOT NULL, every_n INTEGER NOT NULL DEFAULT 1,
    added_epoch REAL NOT NULL, added_by TEXT
);
CREATE TABLE IF NOT EXISTS live_camera_health (
    camera TEXT PRIMARY KEY, source TEXT NOT NULL, state TEXT NOT NULL, fps REAL NOT NULL, lag_s REAL,
    last_frame_epoch REAL, reconnects INTEGER NOT NULL, frames_read INTEGER NOT NULL,
    frames_dropped INTEGER NOT NULL, video_id INTEGER, error TEXT, updated_epoch REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS live_camera_gaps (
    id INTEGER PRIMARY KEY, camera TEXT NOT NULL, start_epoch REAL NOT NULL, end_epoch REAL,
    reason TEXT NOT NULL, video_before INTEGER, video_after INTEGER
);
CREATE INDEX IF NOT EXISTS live_camera_gaps_camera ON live_camera_gaps(camera, start_epoch);
"""


def ensure_camera_tables(connection: sqlite3.Connection) -> None:
    ensure_tables(connection, _DDL)


@dataclass
class CameraHealth:
    """How a camera is doing, as the page shows it. ``state``: connecting, live, reconnecting, finished, failed."""

    camera: str
    source: str  # public URL or file path
    state: str = "connecting"
    fps: float = 0.0  # frames ingested per second, over the last few seconds
    lag_s: float | None = None  # seconds from reading the newest processed frame to its being embedded
    last_frame_epoch: float | None = None
    reconnects: int = 0
    frames_read: int = 0
    frames_dropped: int = 0
    video_id: int | None = None
    error: str | None = None
    updated_epoch: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_health(connection: sqlite3.Connection, health: CameraHealth) -> None:
    health.updated_epoch = time.time()
    values = health.to_json()
    columns = ", ".join(values)
    connection.execute(
        f"INSERT OR REPLACE INTO live_camera_health({columns}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )


def read_health(connection: sqlite3.Connection) -> list[CameraHealth]:
    rows = connection.execute("SELECT * FROM live_camera_health ORDER BY camera").fetchall()
    return [CameraHealth(**dict(row)) for row in rows]


@dataclass(frozen=True)
class Gap:
    id: int
    camera: str
    start_epoch: float
    end_epoch: float | None  # None while the camera is still away
    reason: str
    video_before: int | None
    video_after: int | None


def open_gap(connection: sqlite3.Connection, camera: str, start: float, reason: str, video_before: int | None) -> int:
    cursor = connection.execute(
        "INSERT INTO live_camera_gaps(camera, start_epoch, reason, video_before) VALUES (?, ?, ?, ?)",
        (camera, start, reason, video_before),
    )
    return int(cursor.lastrowid or 0)


def close_gap(connection: sqlite3.Connection, gap_id: int, end: float, video_after: int | None) -> None:
    connection.execute("UPDATE live_camera_gaps SET end_epoch = ?, video_after = ? WHERE id = ?",
                       (end, video_after, gap_id))


def gaps(connection: sqlite3.Connection, camera: str | None = None) -> list[Gap]:
    where, params = ("WHERE camera = ?", (camera,)) if camera is not None else ("", ())
    rows = connection.execute(f"SELECT * FROM live_camera_gaps {where} ORDER BY start_epoch", params).fetchall()
    return [Gap(**dict(row)) for row in rows]


def forget_gaps_before(connection: sqlite3.Connection, epoch: float) -> int:
    """Retention: gaps that ended before ``epoch`` describe footage that is gone."""
    cursor = connection.execute("DELETE FROM live_camera_gaps WHERE end_epoch IS NOT NULL AND end_epoch < ?",
                                (epoch,))
    return cursor.rowcount


@dataclass(frozen=True)
class RegisteredCamera:
    name: str
    url: str  # as registered, credentials included: for the watcher only
    every_n: int
    added_epoch: float
    added_by: str | None


def register_camera(connection: sqlite3.Connection, name: str, url: str, every_n: int, added_by: str | None) -> bool:
    """Add (or replace) a camera; True when it is new."""
    known = connection.execute("SELECT 1 FROM live_cameras WHERE name = ?", (name,)).fetchone() is not None
    connection.execute("INSERT OR REPLACE INTO live_cameras(name, url, every_n, added_epoch, added_by) "
                       "VALUES (?, ?, ?, ?, ?)", (name, url, every_n, time.time(), added_by))
    return not known


def unregister_camera(connection: sqlite3.Connection, name: str) -> bool:
    """Remove a camera (its footage stays in the store); False when there was none."""
    removed = connection.execute("DELETE FROM live_cameras WHERE name = ?", (name,)).rowcount > 0
    connection.execute("DELETE FROM live_camera_health WHERE camera = ?", (name,))
    return removed


def registered_cameras(connection: sqlite3.Connection) -> list[RegisteredCamera]:
    rows = connection.execute("SELECT * FROM live_cameras ORDER BY name").fetchall()
    return [RegisteredCamera(**dict(row)) for row in rows]
