"""Who is who in a store: the people ``reidkit cluster --db`` found, as stored rows and typed records.

A clustering is saved whole or not at all: ``save_people`` deletes the previous one and writes the new one in one
transaction, so a reader sees either the old people or the new, never a mix. A person is a number (1..N by first
sighting) and its tracks, each with the confidence that it belongs there; the clustering's row keeps the method, the
parameters (each with how it was derived from the store's own features) and the model whose features it grouped.

Stores older than schema 3 have no people tables; a reader reads them as "not clustered" (``clustering`` is None)
rather than failing, as it reads their other tables as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reidkit.store.reader import StoreReader
from reidkit.store.rows import TrackRow, in_batches, track_time_key

if TYPE_CHECKING:
    from reidkit.store.writer import Store


@dataclass(frozen=True)
class Clustering:
    """The clustering a store holds: ``params`` as run (JSON-able), ``commit_seq`` the store commit it saw."""

    model_id: str
    method: str
    params: dict[str, Any]
    created_at: str
    commit_seq: int


@dataclass(frozen=True)
class Membership:
    """One track's person and how sure the clustering is of it (in [0, 1])."""

    person_id: int
    confidence: float


@dataclass(frozen=True)
class Person:
    """A person with its tracks still in the store (time order) and their confidences."""

    id: int
    tracks: list[TrackRow]
    track_confidence: dict[int, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """The mean of its tracks' confidences."""
        values = [self.track_confidence[track.id] for track in self.tracks]
        return sum(values) / len(values) if values else 0.0

    @property
    def cameras(self) -> list[str]:
        return sorted({track.camera for track in self.tracks})


def has_people_tables(store: StoreReader) -> bool:
    found = store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'track_people'").fetchone()
    return found is not None


def clustering(store: StoreReader) -> Clustering | None:
    """The store's current clustering, or None (never clustered, or a store older than schema 3)."""
    if not has_people_tables(store):
        return None
    row = store.db.execute(
        "SELECT model_id, method, params, created_at, commit_seq FROM clustering WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    return Clustering(str(row[0]), str(row[1]), json.loads(row[2]), str(row[3]), int(row[4]))


def drop_people(store: Store) -> bool:
    """Inside a transaction: forget the store's clustering (after a reindex its people, thresholds and confidences
    describe another model's features); whether there was one."""
    if clustering(store) is None:
        return False
    for table in ("track_people", "people", "clustering"):
        store.db.execute(f"DELETE FROM {table}")
    return True


def save_people(
    store: Store, method: str, params: Mapping[str, Any], memberships: Mapping[int, tuple[int, float]]
) -> Clustering:
    """Replace the store's clustering with ``memberships`` (``{track id: (group, confidence)}``, any group labels)
    in one transaction. Groups are renumbered 1..N by their first sighting, so the numbers read in time order."""
    model = store.model
    if model is None:
        raise ValueError("a store without features has nothing to cluster")
    tracks = store.tracks(memberships)  # an id with no track sorts last here, and the foreign key refuses it below
    first_seen: dict[int, tuple[int, float, float]] = {}
    for track_id, (group, _) in memberships.items():
        key = track_time_key(tracks[track_id]) if track_id in tracks else (2, 0.0, 0.0)
        first_seen[group] = min(first_seen.get(group, (2, 0.0, 0.0)), key)
    number = {group: n for n, group in enumerate(sorted(first_seen, key=lambda g: (first_seen[g], g)), start=1)}
    confidences: dict[int, list[float]] = {}
    for group, confidence in memberships.values():
        confidences.setdefault(number[group], []).append(confidence)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with store.transaction():
        drop_people(store)
        store.db.executemany(
            "INSERT INTO people(id, confidence) VALUES (?, ?)",
            [(person, sum(values) / len(values)) for person, values in sorted(confidences.items())],
        )
        store.db.executemany(
            "INSERT INTO track_people(track_id, person_id, confidence) VALUES (?, ?, ?)",
            [(track_id, number[group], float(conf)) for track_id, (group, conf) in sorted(memberships.items())],
        )
        seq = store.commit_seq
        store.db.execute(
            "INSERT INTO clustering(id, model_id, method, params, created_at, commit_seq) VALUES (1, ?, ?, ?, ?, ?)",
            (model.model_id, method, json.dumps(dict(params), sort_keys=True), created, seq),
        )
    return Clustering(model.model_id, method, dict(params), created, seq)


def memberships(store: StoreReader, track_ids: Iterable[int]) -> dict[int, Membership]:
    """The person of each of ``track_ids`` that the clustering placed (tracks ingested since have none)."""
    if not has_people_tables(store):
        return {}
    found: dict[int, Membership] = {}
    for part, marks in in_batches(track_ids):
        rows = store.db.execute(
            f"SELECT track_id, person_id, confidence FROM track_people WHERE track_id IN {marks}", part
        )
        found.update((int(t), Membership(int(p), float(c))) for t, p, c in rows)
    return found


def person(store: StoreReader, person_id: int) -> Person | None:
    """Person ``person_id`` with the tracks of it still in the store (None: no such person, or none left)."""
    if not has_people_tables(store):
        return None
    rows = store.db.execute("SELECT track_id, confidence FROM track_people WHERE person_id = ?", (person_id,))
    confidence = {int(t): float(c) for t, c in rows}
    tracks = sorted(store.tracks(confidence).values(), key=track_time_key)
    return Person(person_id, tracks, confidence) if tracks else None


def people(store: StoreReader) -> list[Person]:
    """Every person with at least one track left, by number."""
    if not has_people_tables(store):
        return []
    rows = store.db.execute("SELECT person_id, track_id, confidence FROM track_people").fetchall()
    tracks = store.tracks(int(row[1]) for row in rows)
    grouped: dict[int, Person] = {}
    for person_id, track_id, confidence in rows:
        if track_id not in tracks:
            continue
        entry = grouped.setdefault(int(person_id), Person(int(person_id), [], {}))
        entry.tracks.append(tracks[track_id])
        entry.track_confidence[int(track_id)] = float(confidence)
    for entry in grouped.values():
        entry.tracks.sort(key=track_time_key)
    return [grouped[key] for key in sorted(grouped)]


def unclustered_tracks(store: StoreReader) -> int:
    """Tracks the current clustering has not placed (ingested since it ran); all of them when there is none."""
    if clustering(store) is None:
        return store.count_rows("tracks")
    # every track_people row has its track (writers delete with foreign keys on: CASCADE), so a difference of counts
    return store.count_rows("tracks") - store.count_rows("track_people")

