"""Reading the live people (``online_people``): who was seen lately, where a person is now, and their live trajectory.

Readers only: the service and the CLI ask these while a watcher links tracks in another process, through
live.sqlite's own locking. A store that has never been watched has no live people (empty answers, not an error).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from reidkit.errors import StoreError
from reidkit.live.live_db import live_db_path, open_live_db


@dataclass(frozen=True)
class LiveTrack:
    """One track of a live person: where (camera) and when (seconds since 1970, UTC)."""

    track_id: int
    camera: str
    first_epoch: float
    last_epoch: float
    best_detection_id: int
    similarity: float | None  # to the person when the track joined them; None for the person's first track


@dataclass(frozen=True)
class LivePerson:
    id: int
    first_epoch: float
    last_epoch: float
    last_camera: str      # where the person is now (their latest track)
    last_track_id: int
    num_tracks: int


def _has_people(store_root: Path) -> bool:
    if not live_db_path(store_root).is_file():
        return False
    with closing(open_live_db(store_root)) as db:
        return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'live_people'").fetchone() is not None


def recent_people(store_root: Path, since_epoch: float | None = None, limit: int = 100) -> list[LivePerson]:
    """The live people last seen at or after ``since_epoch`` (all when None), most recently seen first."""
    if not _has_people(store_root):
        return []
    with closing(open_live_db(store_root)) as db:
        rows = db.execute(
            "SELECT id, first_epoch, last_epoch, last_camera, last_track_id, num_tracks FROM live_people "
            "WHERE last_epoch >= ? ORDER BY last_epoch DESC, id LIMIT ?",
            (since_epoch if since_epoch is not None else float("-inf"), limit)).fetchall()
    return [LivePerson(*row) for row in rows]


def trajectory(store_root: Path, person_id: int) -> tuple[LivePerson, list[LiveTrack]]:
    """A live person and their tracks in time order (a ``StoreError`` naming the id when there is no such person)."""
    person = _person(store_root, person_id)
    with closing(open_live_db(store_root)) as db:
        rows = db.execute(
            "SELECT track_id, camera, first_epoch, last_epoch, best_detection_id, similarity FROM live_track_people "
            "WHERE person_id = ? ORDER BY first_epoch, track_id", (person_id,)).fetchall()
    return person, [LiveTrack(*row) for row in rows]


def person_of_track(store_root: Path, track_id: int) -> LivePerson:
    """The live person a store track was linked to (a ``StoreError`` naming the track when it was never linked)."""
    if _has_people(store_root):
        with closing(open_live_db(store_root)) as db:
            row = db.execute("SELECT person_id FROM live_track_people WHERE track_id = ?", (track_id,)).fetchone()
        if row is not None:
            return _person(store_root, int(row[0]))
    raise StoreError(f"track {track_id} is not linked to a live person (only tracks of watched cameras are)")


def _person(store_root: Path, person_id: int) -> LivePerson:
    found = None
    if _has_people(store_root):
        with closing(open_live_db(store_root)) as db:
            found = db.execute(
                "SELECT id, first_epoch, last_epoch, last_camera, last_track_id, num_tracks FROM live_people "
                "WHERE id = ?", (person_id,)).fetchone()
    if found is None:
        raise StoreError(f"no live person {person_id}")
    return LivePerson(*found)

