"""Zones: named polygons drawn on a camera's frames, kept in the store folder's ``live.sqlite``.

A zone belongs to one camera and is a simple polygon in that camera's pixel coordinates (x right, y down, the frame
as stored). Zones live in ``live.sqlite`` (``live_db``) rather than in the store's database because the service and
the command line draw them while a live watcher holds the store's writer lock; nothing here needs that lock.

A polygon is checked before it is kept, and a bad one is refused with one line naming the field it came in: at least
three points, each two finite numbers, inside the frame when the camera's frame size is known, no point repeated in
a row, and no edge crossing or touching another (a self-intersecting outline has no single inside).
Whether a point lies inside a zone is decided by ``points_inside``: an exact crossing-number test, with points on
the outline counted as inside.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.errors import ConfigError
from reidkit.errors import StoreError
from reidkit.image_open import open_header
from reidkit.live.live_db import ensure_tables, live_db_path, open_live_db, snapshot_path
from reidkit.store.reader import StoreReader

MAX_POINTS = 200
MAX_NAME_CHARS = 100
_SAFE_CAMERA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
ZONES_DDL = """
CREATE TABLE IF NOT EXISTS zones (
    camera TEXT NOT NULL,                  -- the camera's name in the store
    name TEXT NOT NULL,
    polygon TEXT NOT NULL,                 -- JSON [[x, y], ...] in the camera's frame pixels, at least 3 points
    updated_at TEXT NOT NULL,              -- ISO 8601 UTC
    PRIMARY KEY (camera, name)
);
"""

Point = tuple[float, float]


@dataclass(frozen=True)
class Zone:
    """A named polygon on one camera's frames (pixel coordinates)."""

    camera: str
    name: str
    polygon: tuple[Point, ...]

    def json(self) -> dict[str, Any]:
        return {"camera": self.camera, "name": self.name, "polygon": [[x, y] for x, y in self.polygon]}


# --- checking ------------------------------------------------------------------------------------------------------
def check_zone_name(name: object, field: str) -> str:
    """A zone's name: 1 to ``MAX_NAME_CHARS`` printable characters (spaces at the ends dropped)."""
    text = str(name).strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME_CHARS or not text.isprintable():
        raise ConfigError(f"{field} {name!r} must be 1 to {MAX_NAME_CHARS} printable characters")
    return text


def parse_polygon(value: object, field: str, frame_size: tuple[int, int] | None = None) -> tuple[Point, ...]:
    """``value`` (JSON text, or a list already parsed) as a checked polygon; ``field`` names it in the error.

    ``frame_size`` (width, height), when known, bounds the points: 0 <= x <= width, 0 <= y <= height."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{field} is not JSON; write the points as [[x, y], [x, y], [x, y], ...]") from None
    if not isinstance(value, list) or len(value) < 3:
        raise ConfigError(f"{field} must be a list of at least 3 points [[x, y], ...]")
    if len(value) > MAX_POINTS:
        raise ConfigError(f"{field} has {len(value)} points; at most {MAX_POINTS} are allowed")
    points = tuple(_point(item, f"{field} point {number}") for number, item in enumerate(value, 1))
    if frame_size is not None:
        width, height = frame_size
        for number, (x, y) in enumerate(points, 1):
            if not (0 <= x <= width and 0 <= y <= height):
                raise ConfigError(f"{field} point {number} ({x:g}, {y:g}) lies outside the camera's "
                                  f"{width}x{height} frame")
    _check_simple(points, field)
    return points


def _point(item: object, field: str) -> Point:
    numbers = item if isinstance(item, list | tuple) else None
    if (numbers is None or len(numbers) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers)
            or not all(math.isfinite(v) for v in numbers)):
        raise ConfigError(f"{field} must be [x, y], two finite numbers; got {json.dumps(item, default=str)[:60]}")
    return float(numbers[0]), float(numbers[1])


def _check_simple(points: Sequence[Point], field: str) -> None:
    """Refuse a repeated point in a row, any edge that crosses or touches a non-adjacent one, and an edge that folds
    back along its neighbour: what is left is a simple polygon, which always encloses an area (points on one line
    fold back somewhere)."""
    count = len(points)
    for i in range(count):
        if points[i] == points[(i + 1) % count]:
            raise ConfigError(f"{field} repeats point {i + 1} as the next point; remove one of them")
    edges = [(points[i], points[(i + 1) % count]) for i in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            adjacent = j == i + 1 or (i == 0 and j == count - 1)
            if adjacent:
                shared = edges[i][1] if j == i + 1 else edges[i][0]
                if _folds_back(edges[i], edges[j], shared):
                    raise ConfigError(f"{field} folds back on itself at edges {i + 1} and {j + 1}")
            elif _segments_meet(*edges[i], *edges[j]):
                raise ConfigError(f"{field} crosses itself: edge {i + 1} meets edge {j + 1}; draw the outline "
                                  "without crossings")


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """Whether ``r``, collinear with ``p``-``q``, lies on that segment."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments a-b and c-d share any point (a crossing, or one touching the other)."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return ((d1 == 0 and _on_segment(c, d, a)) or (d2 == 0 and _on_segment(c, d, b))
            or (d3 == 0 and _on_segment(a, b, c)) or (d4 == 0 and _on_segment(a, b, d)))


def _folds_back(first: tuple[Point, Point], second: tuple[Point, Point], shared: Point) -> bool:
    """Two edges meeting at ``shared`` that run back along each other (collinear, pointing the same way from it)."""
    a = first[0] if first[1] == shared else first[1]
    b = second[1] if second[0] == shared else second[0]
    if _cross(shared, a, b) != 0:
        return False
    return (a[0] - shared[0]) * (b[0] - shared[0]) + (a[1] - shared[1]) * (b[1] - shared[1]) > 0


def points_inside(points: np.ndarray, polygon: Sequence[Point]) -> np.ndarray:
    """Which of ``points`` (N, 2) lie inside ``polygon`` or on its outline: the crossing-number rule, exact for the
    float64 coordinates given (a ray to the right from the point crosses the outline an odd number of times)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), dtype=bool)
    on_edge = np.zeros(len(points), dtype=bool)
    count = len(polygon)
    for i in range(count):
        (x0, y0), (x1, y1) = polygon[i], polygon[(i + 1) % count]
        cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
        on_edge |= (cross == 0) & (np.minimum(x0, x1) <= x) & (x <= np.maximum(x0, x1)) \
            & (np.minimum(y0, y1) <= y) & (y <= np.maximum(y0, y1))
        straddles = (y0 > y) != (y1 > y)  # half-open in y, so a vertex on the ray counts once
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < x_at)
    return inside | on_edge


# --- the camera a zone is drawn on ---------------------------------------------------------------------------------
def safe_camera_name(camera: str) -> bool:
    """Whether ``camera`` may name a file (letters, digits, ``_-.``; not only dots): the snapshot's rule."""
    return bool(camera) and set(camera) <= _SAFE_CAMERA and set(camera) != {"."} and len(camera) <= 200


def snapshot_of(store_root: Path, camera: str) -> Path | None:
    """The live watcher's latest frame of ``camera``, when the name can be a file name and the file exists."""
    if not safe_camera_name(camera):
        return None
    path = snapshot_path(store_root, camera)
    return path if path.is_file() else None


def camera_frame_size(store: StoreReader | None, store_root: Path, camera: str, field: str) -> tuple[int, int]:
    """The (width, height) of ``camera``'s frames: its latest video's in the store, else its live snapshot's. A
    camera with neither is refused, naming ``field`` and the cameras there are."""
    row = None if store is None else store.db.execute(
        "SELECT v.width, v.height FROM videos v JOIN cameras c ON c.id = v.camera_id WHERE c.name = ? "
        "ORDER BY v.id DESC LIMIT 1", (camera,)).fetchone()
    if row is not None:
        return int(row[0]), int(row[1])
    snapshot = snapshot_of(store_root, camera)
    if snapshot is not None:
        try:
            with open_header(snapshot) as image:
                return image.size
        except OSError:  # a snapshot being replaced or unreadable: the camera is still unknown here
            pass
    known = ", ".join(map(repr, store.cameras())) if store is not None else ""
    raise StoreError(f"{field} {camera!r}: no such camera in the store and no live frame of it; its cameras are "
                     f"{known or 'none yet'}")


# --- keeping zones -------------------------------------------------------------------------------------------------
def _connection(store_root: Path) -> Any:
    connection = open_live_db(store_root)
    ensure_tables(connection, ZONES_DDL)
    return connection


def load_zones(store_root: Path, camera: str | None = None) -> list[Zone]:
    """The zones of ``camera`` (every camera's when None), by camera then name; none when no live database yet."""
    if not live_db_path(store_root).is_file():
        return []
    connection = _connection(store_root)
    try:
        where, params = ("WHERE camera = ?", (camera,)) if camera is not None else ("", ())
        rows = connection.execute(f"SELECT camera, name, polygon FROM zones {where} ORDER BY camera, name", params)
        return [Zone(str(c), str(n), tuple((float(x), float(y)) for x, y in json.loads(p))) for c, n, p in rows]
    finally:
        connection.close()


def save_zones(store_root: Path, zones: Sequence[Zone]) -> None:
    """Keep ``zones`` (already checked), replacing any of the same camera and name, all in one transaction."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    connection = _connection(store_root)
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for zone in zones:
                connection.execute(
                    "INSERT INTO zones(camera, name, polygon, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(camera, name) DO UPDATE SET polygon = excluded.polygon, "
                    "updated_at = excluded.updated_at",
                    (zone.camera, zone.name, json.dumps([[x, y] for x, y in zone.polygon]), now),
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()


def remove_zone(store_root: Path, camera: str, name: str) -> bool:
    """Forget zone ``name`` of ``camera``; False when there was none."""
    connection = _connection(store_root)
    try:
        cursor = connection.execute("DELETE FROM zones WHERE camera = ? AND name = ?", (camera, name))
        return cursor.rowcount > 0
    finally:
        connection.close()


def zones_from_file(data: object, camera: str, field: str, frame_size: tuple[int, int] | None) -> list[Zone]:
    """Zones from a file's JSON: ``{"zones": [{"name": ..., "polygon": [[x, y], ...]}, ...]}`` or the list alone;
    an entry may name its ``camera``, which must then be ``camera``."""
    entries = data.get("zones") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f'{field} must hold {{"zones": [{{"name": ..., "polygon": [[x, y], ...]}}, ...]}}')
    zones = []
    for number, entry in enumerate(entries, 1):
        where = f"{field} zone {number}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with name and polygon")
        if entry.get("camera", camera) != camera:
            raise ConfigError(f"{where} is for camera {entry['camera']!r}, not --camera {camera!r}")
        name = check_zone_name(entry.get("name"), f"{where} name")
        zones.append(Zone(camera, name, parse_polygon(entry.get("polygon"), f"{where} ({name}) polygon", frame_size)))
    names = [zone.name for zone in zones]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{field} names zone {repeated[0]!r} more than once")
    return zones
