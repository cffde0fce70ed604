"""Alerts: a live track that looks like someone on the watch list, stored, then sent to the webhooks.

``AlertListener`` is a ``events.TrackListener``: after each committed segment it scores every updated track's vector
against everyone enrolled under the store's model (cosine similarity; both are unit vectors) and raises an alert
for each (person, track) at or above ``threshold``. The alert row is committed to ``live.sqlite`` first (the page's
stream and ``GET /alerts`` follow that table, whichever process wrote it), then handed to the webhooks
(``webhooks.WebhookSender``, in the background).

When an alert is raised, and when not:

- a track alerts once per person: it grows over many segments, and only the first update at or above the
  threshold raises one (``UNIQUE(person_id, track_id)`` holds to that across restarts too); a track that starts
  below and climbs above it alerts when it does;
- another track of the same person on the same camera whose first sighting comes within ``cooldown_s`` after
  that person's last sighting there (in any track already alerted or passed over for them) raises no new alert: a
  tracker that loses someone behind a pillar and finds them again makes a new track, and one walk past a camera is
  one alert. The passed-over track extends the window, so a walk split into many tracks stays one alert. After a
  longer absence (the person left and came back) the next track alerts again. Another camera always alerts, and
  so does a track that began while an alerted one was still being seen (for more than ``HANDOVER_S``, the overlap of
  a tracker's hand-over from one track to the next): one person is not two people at once, so
  one of the two is someone else, and an early wrong alert (two people walking together, the first track seen
  matching best) must not silence the right one (benchmarks/bench_watchlist.py measured exactly that).

The threshold's default comes from measurement (benchmarks/bench_watchlist.py; docs/live.md, "Watch list and
alerts"). Each alert records the latency from ``TrackUpdate.first_frame_received`` (the frame of the track's first
sighting read from the stream) to the alert row being committed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.live.events import TrackUpdate
from reidkit.live.live_db import ensure_tables, open_live_db
from reidkit.live.watchlist import WATCHLIST_DDL, WatchVectors, watch_list_key, watch_vectors
from reidkit.live.webhooks import WebhookSender
from reidkit.store.layout import DB_NAME

log = logging.getLogger("reidkit.live.alerts")

ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL,      -- the watch list's id (the alert stays when the person is removed)
    person_name TEXT NOT NULL,       -- the name when the alert was raised
    camera TEXT NOT NULL,
    track_id INTEGER NOT NULL,       -- the store's tracks.id
    detection_id INTEGER NOT NULL,   -- the track's best crop when the alert was raised
    score REAL NOT NULL,             -- cosine similarity of the track's vector and the person's feature
    threshold REAL NOT NULL,
    first_seen REAL NOT NULL,        -- epoch seconds (UTC) of the track's first sighting
    first_frame_received REAL NOT NULL,
    raised_at REAL NOT NULL,         -- epoch seconds when the alert row was committed
    latency_s REAL NOT NULL,         -- raised_at - first_frame_received
    UNIQUE (person_id, track_id)
);
"""
# The shipped model's, measured (benchmarks/bench_watchlist.py; benchmarks/RESULTS.md, "Watch list"): the middle
# of the thresholds at which neither 750 Market-1501 strangers nor another walker alerted and no walker was missed.
# Another model has another scale: measure it again.
DEFAULT_THRESHOLD = 0.925
DEFAULT_COOLDOWN_S = 60.0
# A tracker handing a person over from one track to the next may see both for a frame or two; two tracks seen
# together for longer than this are two people.
HANDOVER_S = 1.0


@dataclass(frozen=True)
class Alert:
    id: int
    person_id: int
    person_name: str
    camera: str
    track_id: int
    detection_id: int
    score: float
    threshold: float
    first_seen: float
    first_frame_received: float
    raised_at: float
    latency_s: float


def alerts_db(store_root: Path) -> sqlite3.Connection:
    """The store's live database with the alerts' (and the watch list's) tables."""
    connection = open_live_db(store_root)
    ensure_tables(connection, WATCHLIST_DDL + ALERTS_DDL)
    return connection


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API, the page's stream and the webhooks send it (times as ISO 8601 UTC)."""
    payload = asdict(alert)
    payload["person"] = {"id": payload.pop("person_id"), "name": payload.pop("person_name")}
    for key in ("first_seen", "raised_at"):
        payload[key] = datetime.fromtimestamp(payload[key], UTC).isoformat(timespec="milliseconds")
    del payload["first_frame_received"]
    payload["score"], payload["latency_s"] = round(alert.score, 4), round(alert.latency_s, 3)
    return payload


def read_alerts(connection: sqlite3.Connection, after_id: int = 0, limit: int = 100, newest_first: bool = False
                ) -> list[Alert]:
    """Alerts with an id above ``after_id``: the ``limit`` oldest (a stream catching up) or newest (a listing)."""
    order = "DESC" if newest_first else "ASC"
    rows = connection.execute(f"SELECT * FROM alerts WHERE id > ? ORDER BY id {order} LIMIT ?", (after_id, limit))
    return [Alert(*row) for row in rows.fetchall()]


def last_alert_id(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0])


class AlertListener:
    """Raises alerts for live tracks (see the module docstring); ``on_tracks`` runs on the live ingest's thread.

    ``model_id``: the model the watcher embeds with (None: the store's, read at the first segment); people enrolled
    under another are not matched. ``send``: what hands a stored alert on (``WebhookSender.send``), or None. Each
    segment checks whether the watch list changed (one indexed read) and reloads the features if so: people enrolled
    or removed while the watcher runs count from the next segment on.
    """

    def __init__(self, store_root: Path, model_id: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                 cooldown_s: float = DEFAULT_COOLDOWN_S,
                 send: Callable[[int, dict[str, Any]], object] | None = None) -> None:
        self.root, self.model_id, self.threshold, self.cooldown_s, self.send = Path(store_root), model_id, \
            threshold, cooldown_s, send
        self._sender: WebhookSender | None = None
        self._connection: sqlite3.Connection | None = None  # opened at the first segment: the watcher makes the store
        self._lock = threading.Lock()
        # track id -> the people it was alerted or passed over for; (person, camera) -> their last sighting there
        self._covered: dict[int, set[int]] = {}
        self._last_seen: dict[tuple[int, str], float] = {}
        self._people: tuple[tuple[int, int], WatchVectors] | None = None  # (watch_list_key, features)

    @classmethod
    def with_webhooks(cls, store_root: Path, model_id: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                      cooldown_s: float = DEFAULT_COOLDOWN_S) -> AlertListener:
        """A listener that hands its alerts to the store's webhooks (a ``WebhookSender`` of its own, stopped by
        ``close``): what ``reidkit watch`` and the service's live worker run."""
        sender = WebhookSender(store_root)
        listener = cls(store_root, model_id, threshold, cooldown_s, send=sender.send)
        listener._sender = sender
        return listener

    def on_tracks(self, updates: list[TrackUpdate]) -> None:
        if not updates:
            return
        with self._lock:
            self.model_id = self.model_id or _store_model_id(self.root)
            if self.model_id is None:
                return
            people = self._watch_list(self.model_id)
            if len(people.ids) == 0:
                return
            usable = [u for u in updates if u.vector.shape[-1] == people.vectors.shape[1]]
            if len(usable) < len(updates):
                log.warning("%d track vector(s) of another size than the watch list's features were skipped",
                            len(updates) - len(usable))
            if not usable:
                return
            scores = np.stack([u.vector for u in usable]).astype(np.float32) @ people.vectors.T
            column_of = {int(person): column for column, person in enumerate(people.ids)}
            for row, update in enumerate(usable):
                # only the people it reaches the threshold for, or was already taken for (their last sighting grows)
                columns = set(np.flatnonzero(scores[row] >= self.threshold).tolist())
                columns |= {column_of[p] for p in self._covered.get(update.track_id, ()) if p in column_of}
                for column in sorted(columns, key=lambda c: -scores[row, c]):
                    self._consider(update, int(people.ids[column]), people.names[column], float(scores[row, column]))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._sender is not None:
            self._sender.close()

    def _watch_list(self, model_id: str) -> WatchVectors:
        """Everyone enrolled under ``model_id``, re-read only when the watch list has changed."""
        key = watch_list_key(self._db(), model_id)
        if self._people is None or self._people[0] != key:
            self._people = key, watch_vectors(self._db(), model_id)
        return self._people[1]

    def _consider(self, update: TrackUpdate, person_id: int, name: str, score: float) -> None:
        covered = self._covered.setdefault(update.track_id, set())
        key = (person_id, update.camera)
        if person_id in covered:
            self._last_seen[key] = max(self._last_seen.get(key, 0.0), update.last_epoch)
            return
        if score < self.threshold:
            return
        covered.add(person_id)
        last = self._last_seen.get(key)
        self._last_seen[key] = max(last or 0.0, update.last_epoch)
        if last is not None and -HANDOVER_S <= update.first_epoch - last <= self.cooldown_s:
            log.info("track %d looks like %r (%.3f) on camera %s within the cool-down: no second alert",
                     update.track_id, name, score, update.camera)
            return
        alert = self._store(update, person_id, name, score)
        if alert is not None and self.send is not None:
            self.send(alert.id, alert_json(alert))

    def _store(self, update: TrackUpdate, person_id: int, name: str, score: float) -> Alert | None:
        raised = time.time()
        values = (person_id, name, update.camera, update.track_id, update.best_detection_id, score, self.threshold,
                  update.first_epoch, update.first_frame_received, raised, raised - update.first_frame_received)
        cursor = self._db().execute(
            "INSERT OR IGNORE INTO alerts(person_id, person_name, camera, track_id, detection_id, score, threshold, "
            "first_seen, first_frame_received, raised_at, latency_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        if cursor.rowcount == 0:  # alerted before a restart
            return None
        alert = Alert(int(cursor.lastrowid or 0), *values)  # type: ignore[arg-type]
        log.warning("alert %d: %r on camera %s, track %d, score %.3f, %.2f s after the first frame", alert.id, name,
                    update.camera, update.track_id, score, alert.latency_s)
        return alert

    def _db(self) -> sqlite3.Connection:
        """The live database, opened on first use with what earlier runs alerted, so that a restarted watcher keeps
        to one alert per (person, track)."""
        if self._connection is None:
            self._connection = alerts_db(self.root)
            for person_id, track_id in self._connection.execute("SELECT person_id, track_id FROM alerts"):
                self._covered.setdefault(int(track_id), set()).add(int(person_id))
        return self._connection


def _store_model_id(store_root: Path) -> str | None:
    """The model whose features the store holds (its meta), read without opening its vector indexes: the watcher
    has the store open for writing, and by its first commit the store has recorded its model."""
    path = Path(store_root) / DB_NAME
    if not path.is_file():
        return None
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as connection:
        row = connection.execute("SELECT value FROM meta WHERE key = 'model_id'").fetchone()
    return None if row is None else str(row[0])


def recent_alerts(store_root: Path, limit: int = 100) -> list[Alert]:
    """The newest ``limit`` alerts, newest first."""
    with closing(alerts_db(store_root)) as connection:
        return read_alerts(connection, 0, limit, newest_first=True)
