"""People across live cameras, linked as their tracks arrive: the store's people clustering, made incremental.

``reidkit cluster --db`` groups a finished store at once; a live system must say "this is the person seen on
camera 1 a minute ago" while the person is still walking. So each committed live track is linked, when it first
arrives, to the most similar recent person or made a new person, with the offline grouping's rules
(search/grouping.py) applied online:

* a track is one person (its pooled, quality-weighted feature is compared, never single crops);
* two tracks of one camera that overlap in time are two people (such a person is never a candidate), and their
  similarities are the known-different pairs (``search.evidence.DifferentPeople``) whose ``LINK_QUANTILE`` is the
  linking threshold: read off the tracks within the window, with no identity labels (``PRIOR_THRESHOLD`` until
  ``MIN_EVIDENCE_PAIRS`` pairs are seen);
* features are centred on their camera's mean over the window (``clustering.camera_normalise``'s rule; a camera
  with fewer than ``MIN_TRACKS_FOR_MEAN`` tracks takes the mean of all cameras): lighting and viewpoint shift a whole
  camera's features alike, and without centring every pair of people looks alike (cosine 0.73 at the median).

A person's similarity to a track is the mean over the person's tracks (average linkage: a single look-alike track
cannot chain two people together). A track that is still its person's only track is tried again each time it grows
(its first vector may come from one blurred crop); a track in a person with others keeps its link. The person's last
sighting follows their newest track. Only tracks seen within ``window_s`` are candidates and in memory (bounded
memory on a camera that runs for months). Everything is in live.sqlite, so a restarted watcher goes on.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidkit.live.events import TrackUpdate
from reidkit.live.live_db import ensure_tables, open_live_db

# Before the footage has shown enough known-different pairs: about what the shipped model's camera-centred
# known-different track pairs reach at LINK_QUANTILE on the shared video's two halves
# (benchmarks/bench_online_people.py, RESULTS "People linked online").
PRIOR_THRESHOLD = 0.70
LINK_QUANTILE = 0.95
MIN_EVIDENCE_PAIRS = 30
MIN_TRACKS_FOR_MEAN = 10
DEFAULT_WINDOW_S = 3600.0

_TABLES = """
CREATE TABLE IF NOT EXISTS live_people (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_epoch REAL NOT NULL,
    last_epoch REAL NOT NULL,
    last_camera TEXT NOT NULL,
    last_track_id INTEGER NOT NULL,     -- the store track of the latest sighting
    num_tracks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS live_track_people (
    track_id INTEGER PRIMARY KEY,       -- the store's tracks.id
    person_id INTEGER NOT NULL REFERENCES live_people(id),
    camera TEXT NOT NULL,
    first_epoch REAL NOT NULL,
    last_epoch REAL NOT NULL,
    best_detection_id INTEGER NOT NULL,
    similarity REAL,                    -- to the person when the track joined them; NULL for a person's first track
    threshold REAL NOT NULL,            -- the threshold it was linked (or found no one) under
    vector BLOB NOT NULL                -- the track's L2-normalised feature when last updated, float32
);
CREATE INDEX IF NOT EXISTS live_track_people_person ON live_track_people(person_id);
CREATE INDEX IF NOT EXISTS live_track_people_last ON live_track_people(last_epoch);
"""


@dataclass
class _Track:
    person: int
    camera: str
    first: float
    last: float
    vector: np.ndarray


@dataclass(frozen=True)
class Link:
    """Where one track went: its person, and the similarity it joined them with (None: it started the person)."""

    track_id: int
    person_id: int
    similarity: float | None
    threshold: float


class _Space:
    """The window's tracks centred on their camera's mean, once per batch: what similarities are measured in."""

    def __init__(self, tracks: dict[int, _Track]) -> None:
        self.means: dict[str, np.ndarray] = {}
        self.overall = np.zeros(0)
        if tracks:
            vectors = np.stack([t.vector for t in tracks.values()]).astype(np.float64)
            self.overall = vectors.mean(axis=0)
            cameras = np.array([t.camera for t in tracks.values()])
            for camera in set(cameras.tolist()):
                mine = cameras == camera
                if mine.sum() >= MIN_TRACKS_FOR_MEAN:
                    self.means[camera] = vectors[mine].mean(axis=0)

    def centre(self, cameras: list[str], vectors: np.ndarray) -> np.ndarray:
        """Rows of ``vectors`` (one per camera in ``cameras``) minus their camera's mean, re-normalised."""
        if self.overall.size == 0:
            return vectors
        means = np.stack([self.means.get(camera, self.overall) for camera in cameras])
        centred = vectors - means
        return (centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class OnlinePeople:
    """The live people of one store; ``on_tracks`` is a ``live.events.TrackListener``. Thread-safe."""

    def __init__(self, store_root: Path, window_s: float = DEFAULT_WINDOW_S) -> None:
        self._root = Path(store_root)
        self._window_s = window_s
        self._lock = threading.Lock()
        self._tracks: dict[int, _Track] = {}
        self._db: sqlite3.Connection | None = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        """live.sqlite, opened at the first tracks (a watcher makes the store folder when it first commits), and
        the window's links read back from it (a restarted watcher goes on)."""
        if self._db is None:
            self._db = open_live_db(self._root)
            ensure_tables(self._db, _TABLES)
            self._load_recent(self._db)
        return self._db

    def _load_recent(self, db: sqlite3.Connection) -> None:
        newest = db.execute("SELECT MAX(last_epoch) FROM live_track_people").fetchone()[0]
        if newest is None:
            return
        rows = db.execute(
            "SELECT track_id, person_id, camera, first_epoch, last_epoch, vector FROM live_track_people "
            "WHERE last_epoch >= ?", (newest - self._window_s,))
        for track_id, person, camera, first, last, blob in rows:
            self._tracks[track_id] = _Track(person, camera, first, last, np.frombuffer(blob, dtype=np.float32))

    def recent_links(self) -> dict[int, int]:
        """Each track within the window -> its person."""
        with self._lock:
            self._connection()
            return {track_id: track.person for track_id, track in self._tracks.items()}

    def on_tracks(self, updates: list[TrackUpdate]) -> None:
        self.link(updates)

    def link(self, updates: list[TrackUpdate]) -> list[Link]:
        """Link the new tracks among ``updates`` (oldest first), refresh the known ones (trying a lone track again);
        one transaction. Returns what became of every new or moved track."""
        links: list[Link] = []
        if not updates:
            return links
        with self._lock:
            db = self._connection()
            space = _Space(self._tracks)
            threshold = self._threshold(space)
            db.execute("BEGIN IMMEDIATE")
            try:
                for update in sorted(updates, key=lambda u: (u.first_epoch, u.track_id)):
                    link = self._place(db, update, space, threshold)
                    if link is not None:
                        links.append(link)
                self._forget_old()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return links

    def _threshold(self, space: _Space) -> float:
        """``LINK_QUANTILE`` of the known-different pairs within the window (tracks of one camera overlapping in
        time), in the centred space; ``PRIOR_THRESHOLD`` while there are fewer than ``MIN_EVIDENCE_PAIRS``."""
        by_camera: dict[str, list[_Track]] = {}
        for track in self._tracks.values():
            by_camera.setdefault(track.camera, []).append(track)
        similarities = []
        for camera, tracks in by_camera.items():
            tracks.sort(key=lambda t: t.first)
            pairs = []
            for i, track in enumerate(tracks):  # sorted by start: the overlapping ones follow it
                j = i + 1
                while j < len(tracks) and tracks[j].first <= track.last:
                    pairs.append((i, j))
                    j += 1
            if not pairs:
                continue
            centred = space.centre([camera] * len(tracks), np.stack([t.vector for t in tracks]))
            first, second = np.array(pairs).T
            similarities.extend(np.einsum("ij,ij->i", centred[first], centred[second]).tolist())
        if len(similarities) < MIN_EVIDENCE_PAIRS:
            return PRIOR_THRESHOLD
        return float(np.quantile(similarities, LINK_QUANTILE))

    def _place(self, db: sqlite3.Connection, update: TrackUpdate, space: _Space, threshold: float) -> Link | None:
        """Link a new track; refresh a known one, trying it again while it is its person's only track."""
        vector = np.asarray(update.vector, dtype=np.float32)
        known = self._tracks.get(update.track_id)
        if known is not None:
            known.last, known.vector = update.last_epoch, vector
            db.execute(
                "UPDATE live_track_people SET last_epoch = ?, best_detection_id = ?, vector = ? WHERE track_id = ?",
                (update.last_epoch, update.best_detection_id, vector.tobytes(), update.track_id))
            # the stored count, not the window's: a person's older tracks may have left the window
            alone = db.execute("SELECT num_tracks FROM live_people WHERE id = ?", (known.person,)).fetchone()[0] == 1
            if not alone:
                self._move_last_sighting(db, known.person, update)
                return None
        person, similarity = self._best_person(update, space)
        if person is not None and similarity >= threshold:
            db.execute("UPDATE live_people SET num_tracks = num_tracks + 1 WHERE id = ?", (person,))
            self._move_last_sighting(db, person, update)
            joined: float | None = similarity
        elif known is not None:
            self._move_last_sighting(db, known.person, update)
            return None
        else:
            cursor = db.execute(
                "INSERT INTO live_people(first_epoch, last_epoch, last_camera, last_track_id, num_tracks) "
                "VALUES (?, ?, ?, ?, 1)", (update.first_epoch, update.last_epoch, update.camera, update.track_id))
            person, joined = int(cursor.lastrowid or 0), None
        self._tracks[update.track_id] = _Track(person, update.camera, update.first_epoch, update.last_epoch, vector)
        db.execute(
            "INSERT OR REPLACE INTO live_track_people(track_id, person_id, camera, first_epoch, last_epoch, "
            "best_detection_id, similarity, threshold, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (update.track_id, person, update.camera, update.first_epoch, update.last_epoch,
             update.best_detection_id, joined, threshold, vector.tobytes()))
        if known is not None:  # the lone track joined someone: its own person goes
            db.execute("DELETE FROM live_people WHERE id = ?", (known.person,))
        return Link(update.track_id, person, joined, threshold)

    def _move_last_sighting(self, db: sqlite3.Connection, person: int, update: TrackUpdate) -> None:
        db.execute(
            "UPDATE live_people SET last_epoch = ?, last_camera = ?, last_track_id = ? WHERE id = ? AND last_epoch <= ?",
            (update.last_epoch, update.camera, update.track_id, person, update.last_epoch))

    def _best_person(self, update: TrackUpdate, space: _Space) -> tuple[int | None, float]:
        """The candidate with the highest mean similarity over their tracks. Not a candidate: the track's own
        person, and anyone with a track on the same camera overlapping it in time (one person is not twice in a
        frame)."""
        own = self._tracks.get(update.track_id)
        excluded = {track.person for t, track in self._tracks.items() if t != update.track_id
                    and track.camera == update.camera and track.first <= update.last_epoch
                    and update.first_epoch <= track.last}
        if own is not None:
            excluded.add(own.person)
        candidates = [t for t in self._tracks.values() if t.person not in excluded]
        if not candidates:
            return None, -1.0
        query = space.centre([update.camera], np.asarray(update.vector, dtype=np.float32)[None, :])[0]
        similarity = space.centre([t.camera for t in candidates], np.stack([t.vector for t in candidates])) @ query
        people, index = np.unique([t.person for t in candidates], return_inverse=True)
        mean = np.bincount(index, weights=similarity) / np.bincount(index)
        best = int(np.argmax(mean))
        return int(people[best]), float(mean[best])

    def _forget_old(self) -> None:
        if not self._tracks:
            return
        newest = max(track.last for track in self._tracks.values())
        for track_id in [t for t, track in self._tracks.items() if track.last < newest - self._window_s]:
            del self._tracks[track_id]
