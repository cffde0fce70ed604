"""The watch list and its alerts on a real store (the shared video as cameras cam1 and cam2): enrolment from a
stored track and from a crop photo through ``reidkit watchlist``, refusals in one line, the ``AlertListener`` fed the
store's own tracks as ``TrackUpdate`` s (one alert per person and track, the cool-down, people of another model left
out), and webhooks on a real HTTP server on 127.0.0.1 that checks the HMAC signature, one of them failing before it
succeeds (every attempt recorded)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reidkit.live.alerts import AlertListener, recent_alerts
from reidkit.live.events import TrackUpdate
from reidkit.live.watchlist import enrol, enrolled
from reidkit.live.webhooks import SIGNATURE_HEADER, WebhookSender, add_webhook, attempts
from reidkit.service.audit import read as read_audit
from reidkit.store.reader import StoreReader

pytestmark = pytest.mark.slow


@pytest.fixture
def store(two_camera_store: Path, tmp_path: Path) -> Path:
    """A copy of the two-camera store (live.sqlite is written beside its database)."""
    return Path(shutil.copytree(two_camera_store, tmp_path / "store"))


def reidkit(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reidkit", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def track_updates(root: Path, camera: str, received: float | None = None) -> list[TrackUpdate]:
    """The store's tracks of ``camera`` as a live ingest would report them, oldest first."""
    with StoreReader.open(root) as store:
        ids = [int(i) for (i,) in store.db.execute(
            "SELECT t.id FROM tracks t JOIN videos v ON v.id = t.video_id JOIN cameras c ON c.id = v.camera_id "
            "WHERE c.name = ? ORDER BY t.first_frame", (camera,))]
        rows = store.tracks(ids)
        found, vectors = store.track_vectors(np.array(ids, dtype=np.int64))
        by_id = dict(zip(found.tolist(), vectors, strict=True))
        updates = []
        for track_id in ids:
            row, crops = rows[track_id], store.track_detections(track_id)
            assert row.first_seen is not None and row.last_seen is not None
            updates.append(TrackUpdate(
                track_id, camera, row.video_id, row.first_seen.timestamp(), row.last_seen.timestamp(), row.num_crops,
                by_id[track_id], crops[len(crops) // 2].id, received if received is not None else time.time()))
        return updates


def test_enrolment_through_the_command_line(store: Path) -> None:
    first = track_updates(store, "cam1")[0]
    added = reidkit("watchlist", "add", "--db", store, "--name", "Walker A", "--track", first.track_id,
                    "--note", "seen at the door")
    assert added.returncode == 0, added.stderr
    assert f"from track {first.track_id}" in added.stdout
    with StoreReader.open(store) as reader:
        crop = store / reader.track_detections(first.track_id)[1].crop_path
    by_photo = reidkit("watchlist", "add", "--db", store, "--name", "Walker B", "--photo", crop)
    assert by_photo.returncode == 0, by_photo.stderr
    listed = json.loads(reidkit("watchlist", "list", "--db", store, "--json").stdout)["people"]
    assert [(p["name"], p["track_id"], p["stale"]) for p in listed] == [
        ("Walker A", first.track_id, False), ("Walker B", None, False)]
    assert listed[0]["note"] == "seen at the door" and "(crop)" in listed[1]["source"]
    # The photo's feature is what `reidkit search PHOTO` queries with: its crop of the track scores high on the track.
    listener_vectors = _features(store)
    assert float(listener_vectors[1] @ first.vector) > 0.8

    assert "nobody on the watch list has this id" in error_line(reidkit("watchlist", "remove", "--db", store, 99))
    assert "either --photo PATH or --track ID" in error_line(
        reidkit("watchlist", "add", "--db", store, "--name", "x", "--photo", crop, "--track", first.track_id))
    assert "--track 999999" in error_line(reidkit("watchlist", "add", "--db", store, "--name", "x", "--track", 999999))
    assert "--name" in error_line(reidkit("watchlist", "add", "--db", store, "--name", " ", "--track", 1))
    empty = store.parent / "empty"
    empty.mkdir()
    assert "empty" in error_line(reidkit("watchlist", "list", "--db", empty))
    removed = reidkit("watchlist", "remove", "--db", store, listed[0]["id"])
    assert removed.returncode == 0 and [p.name for p in enrolled(store)] == ["Walker B"]
    actions = [entry.action for entry in read_audit(store)]
    assert actions.count("watchlist.add") == 2 and "watchlist.remove" in actions


def _features(root: Path) -> np.ndarray:
    from reidkit.live.watchlist import watch_vectors, watchlist_db

    with StoreReader.open(root) as reader:
        model = reader.model
    assert model is not None
    connection = watchlist_db(root)
    try:
        return watch_vectors(connection, model.model_id).vectors
    finally:
        connection.close()


def test_a_person_alerts_once_per_track_and_once_per_walk(store: Path) -> None:
    with StoreReader.open(store) as reader:
        model = reader.model
    assert model is not None
    cam1 = track_updates(store, "cam1", received=time.time() - 0.5)
    target = max(cam1, key=lambda u: u.num_crops)
    person = enrol(store, "Target", "", target.vector, model.model_id, f"track {target.track_id}",
                   target.track_id)
    enrol(store, "Other model", "", target.vector, "another-model", "track 0")  # never matched
    listener = AlertListener(store, model.model_id, threshold=0.99, cooldown_s=5.0)
    listener.on_tracks(cam1)
    listener.on_tracks(cam1)  # the same tracks, grown: no second alert
    (alert,) = recent_alerts(store)
    assert (alert.person_id, alert.person_name, alert.track_id, alert.camera) == (person.id, "Target",
                                                                                  target.track_id, "cam1")
    assert alert.detection_id == target.best_detection_id and alert.score > 0.99
    assert 0.5 <= alert.latency_s < 5 and alert.first_seen == target.first_epoch
    # The tracker lost him and made a new track a second later: the same walk, no alert; ten minutes later, one.
    same_walk = _moved(target, track_id=10**6, by_s=target.last_epoch - target.first_epoch + 1)
    listener.on_tracks([same_walk])
    assert len(recent_alerts(store)) == 1
    # A track seen at the same time as his is someone else, however alike: it alerts.
    beside = _moved(target, track_id=10**6 + 2, by_s=0.5)
    listener.on_tracks([beside])
    assert len(recent_alerts(store)) == 2
    came_back = _moved(target, track_id=10**6 + 1, by_s=600)
    listener.on_tracks([came_back])
    assert [a.track_id for a in recent_alerts(store)] == [came_back.track_id, beside.track_id, target.track_id]
    # Someone enrolled while the listener runs counts from the next segment on.
    other = next(u for u in cam1 if u.track_id != target.track_id)
    enrol(store, "Later", "", other.vector, model.model_id, f"track {other.track_id}")
    listener.on_tracks([other])
    assert recent_alerts(store)[0].person_name == "Later" and recent_alerts(store)[0].track_id == other.track_id
    listener.close()
    # A restarted watcher remembers what it alerted on.
    restarted = AlertListener(store, model.model_id, threshold=0.99)
    restarted.on_tracks(cam1)
    assert len(recent_alerts(store)) == 4
    restarted.close()


def _moved(update: TrackUpdate, track_id: int, by_s: float) -> TrackUpdate:
    """The same person's feature as another track, ``by_s`` later."""
    return TrackUpdate(track_id, update.camera, update.video_id, update.first_epoch + by_s,
                       update.last_epoch + by_s, update.num_crops, update.vector, update.best_detection_id,
                       time.time())


class Receiver:
    """A webhook receiver on 127.0.0.1: checks each POST's signature; ``/flaky`` answers 500 to its first POST."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets, self.received, self.bad = secrets, [], []
        self.tries: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                path = self.path
                receiver.tries[path] = receiver.tries.get(path, 0) + 1
                expected = "sha256=" + hmac.new(receiver.secrets[path].encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, "")):
                    receiver.bad.append(path)
                    self.send_response(401)
                elif path == "/flaky" and receiver.tries[path] == 1:
                    self.send_response(500)
                else:
                    receiver.received.append((path, json.loads(body)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver({})
    yield found
    found.close()


def test_webhooks_are_signed_retried_and_recorded(store: Path, receiver: Receiver) -> None:
    with StoreReader.open(store) as reader:
        model = reader.model
    assert model is not None
    good, secret = add_webhook(store, receiver.url + "/ok")
    flaky, _ = add_webhook(store, receiver.url + "/flaky", secret="s" * 20)
    dead, _ = add_webhook(store, "http://127.0.0.1:9/nobody")  # the discard port: connection refused
    receiver.secrets.update({"/ok": secret, "/flaky": "s" * 20})
    target = max(track_updates(store, "cam2"), key=lambda u: u.num_crops)
    enrol(store, "Target", "", target.vector, model.model_id, f"track {target.track_id}")
    sender = WebhookSender(store, max_attempts=3, base_delay_s=0.1)
    listener = AlertListener(store, model.model_id, threshold=0.99, send=sender.send)
    listener.on_tracks([target])
    sender.close(wait_s=10)
    listener.close()
    (alert,) = recent_alerts(store)
    assert sorted(path for path, _ in receiver.received) == ["/flaky", "/ok"] and not receiver.bad
    body = receiver.received[0][1]
    assert (body["id"], body["track_id"], body["camera"], body["person"]["name"]) == (alert.id, target.track_id,
                                                                                       "cam2", "Target")
    tried = {(a.webhook_id, a.attempt): (a.status, a.delivered) for a in attempts(store, alert.id)}
    assert tried[(good.id, 1)] == (204, True)
    assert tried[(flaky.id, 1)] == (500, False) and tried[(flaky.id, 2)] == (204, True)
    assert [tried[(dead.id, n)] for n in (1, 2, 3)] == [(None, False)] * 3 and (dead.id, 4) not in tried
    assert all(a.error for a in attempts(store, alert.id) if a.webhook_id == dead.id)
    (shown,) = json.loads(reidkit("watchlist", "alerts", "--db", store, "--json").stdout)["alerts"]
    assert (shown["id"], shown["person"]["name"], shown["camera"]) == (alert.id, "Target", "cam2")
    assert sum(d["delivered"] for d in shown["deliveries"]) == 2 and len(shown["deliveries"]) == 6
    listed = reidkit("watchlist", "webhook", "list", "--db", store).stdout
    assert receiver.url + "/ok" in listed and secret not in listed and "s" * 20 not in listed
    assert "http:// or https://" in error_line(reidkit("watchlist", "webhook", "add", "--db", store, "--url",
                                                       "ftp://x"))


def test_the_benchmark_plays_tracks_as_the_live_ingest_reports_them(store: Path) -> None:
    """``bench_watchlist.segment_updates``: per 1.5 s segment the tracks that grew, each track's last update carrying
    the store's own track vector (the threshold is measured on what the listener will really be given)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_watchlist", Path(__file__).parents[1] / "benchmarks" /
                                                  "bench_watchlist.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with StoreReader.open(store) as reader:
        (video_id,) = [v.id for v in reader.videos() if v.camera == "cam2"]
        video = reader.video(video_id)
    segments = bench.segment_updates(store, video_id)
    assert len(segments) == int((video.end_frame - 2 - video.start_frame) / video.fps / bench.SEGMENT_S) + 1
    last = {u.track_id: u for segment in segments for u in segment}
    expected = {u.track_id: u for u in track_updates(store, "cam2")}
    assert last.keys() == expected.keys()
    for track_id, update in last.items():
        assert float(update.vector @ expected[track_id].vector) > 0.9999
        assert update.num_crops == expected[track_id].num_crops
    assert all(u.first_epoch <= u.last_epoch for segment in segments for u in segment)
