"""The watch list, webhooks and alerts over HTTP, on a real uvicorn server on a copy of the small store: who may do
what (viewers see, operators enrol, admins configure webhooks), enrolment from a photo and from a track, a webhook's
secret answered once and never again, bad fields named, the server-sent events stream (token in the header only,
each alert once, resumed after the last id) and the audit log's entries."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from reidkit.live.alerts import AlertListener
from reidkit.live.events import TrackUpdate
from reidkit.service.access import Role, create_token
from reidkit.service.audit import read as read_audit
from reidkit.service.settings import ServiceSettings
from reidkit.store.reader import StoreReader

pytestmark = pytest.mark.slow
API = "/api/v1"


@pytest.fixture(scope="module")
def live(small_store: Path, serve: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[str, Path, dict[str, dict[str, str]]]:
    root = Path(shutil.copytree(small_store, tmp_path_factory.mktemp("alerts") / "store"))
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    tokens = {role.name: {"Authorization": f"Bearer {create_token(root, role, f'alerts {role.name}')[1]}"}
              for role in Role}
    return url, root, tokens


def longest_track(root: Path) -> tuple[int, Path, TrackUpdate]:
    """The store's longest track, a crop of it, and the track as a live update."""
    with StoreReader.open(root) as store:
        (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        crops = store.track_detections(track_id)
        row = store.tracks([track_id])[track_id]
        _, vectors = store.track_vectors(np.array([track_id]))
        assert row.first_seen is not None and row.last_seen is not None
        update = TrackUpdate(track_id, row.camera, row.video_id, row.first_seen.timestamp(),
                             row.last_seen.timestamp(), row.num_crops, vectors[0], crops[1].id, time.time() - 0.3)
        return track_id, root / crops[2].crop_path, update


def test_roles_enrolment_and_webhooks(live: tuple[str, Path, dict[str, dict[str, str]]]) -> None:
    url, root, tokens = live
    track_id, crop, _ = longest_track(root)
    with httpx.Client(base_url=url, timeout=120) as client:
        photo = {"image": (crop.name, crop.read_bytes(), "image/jpeg")}
        assert client.post(f"{API}/watchlist", headers=tokens["viewer"], data={"name": "x"},
                           files=photo).status_code == 403
        assert client.post(f"{API}/watchlist", data={"name": "x"}, files=photo).status_code == 401
        by_photo = client.post(f"{API}/watchlist", headers=tokens["operator"], data={"name": "Ann", "note": "door"},
                               files=photo)
        assert by_photo.status_code == 200, by_photo.text
        assert by_photo.json()["source"].startswith(f"photo {crop.name!r} (crop") and not by_photo.json()["stale"]
        by_track = client.post(f"{API}/watchlist/track/{track_id}", headers=tokens["operator"], data={"name": "Bo"})
        assert by_track.status_code == 200 and by_track.json()["track_id"] == track_id
        missing = client.post(f"{API}/watchlist/track/999999", headers=tokens["operator"], data={"name": "Bo"})
        assert missing.status_code == 404 and "999999" in missing.json()["error"]["message"]
        blank = client.post(f"{API}/watchlist/track/{track_id}", headers=tokens["operator"], data={"name": "  "})
        assert blank.status_code == 400 and "name" in blank.json()["error"]["message"]
        people = client.get(f"{API}/watchlist", headers=tokens["viewer"]).json()["people"]
        assert [p["name"] for p in people] == ["Ann", "Bo"] and "feature" not in people[0]

        assert client.get(f"{API}/webhooks", headers=tokens["operator"]).status_code == 403
        made = client.post(f"{API}/webhooks", headers=tokens["admin"], json={"url": "http://127.0.0.1:9/hook"})
        assert made.status_code == 200 and made.json()["secret"].startswith("whsec_")
        listed = client.get(f"{API}/webhooks", headers=tokens["admin"])
        assert made.json()["secret"] not in listed.text and listed.json()["webhooks"][0]["url"].endswith("/hook")
        bad = client.post(f"{API}/webhooks", headers=tokens["admin"], json={"url": "file:///etc/passwd"})
        assert bad.status_code == 400 and "url" in bad.json()["error"]["message"]
        short = client.post(f"{API}/webhooks", headers=tokens["admin"], json={"url": "http://a.b/", "secret": "x"})
        assert short.status_code == 400 and "secret" in short.json()["error"]["message"]
        hook_id = made.json()["webhook"]["id"]
        assert client.delete(f"{API}/webhooks/{hook_id}", headers=tokens["admin"]).status_code == 200
        assert client.delete(f"{API}/webhooks/{hook_id}", headers=tokens["admin"]).status_code == 404
        assert client.delete(f"{API}/watchlist/{people[0]['id']}", headers=tokens["viewer"]).status_code == 403
        assert client.delete(f"{API}/watchlist/{people[0]['id']}", headers=tokens["operator"]).status_code == 200
    actions = [entry.action for entry in read_audit(root, limit=1000)]
    for action in ("watchlist.add", "watchlist.remove", "watchlist", "webhook.add", "webhook.remove", "webhooks"):
        assert action in actions, action
    assert all(made.json()["secret"] not in entry.target for entry in read_audit(root, limit=1000))


def test_alerts_stream_as_server_sent_events(live: tuple[str, Path, dict[str, dict[str, str]]]) -> None:
    url, root, tokens = live
    with StoreReader.open(root) as store:
        model = store.model
    assert model is not None
    track_id, _, update = longest_track(root)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"{API}/alerts/stream").status_code == 401
        secret = tokens["viewer"]["Authorization"].split()[1]
        assert client.get(f"{API}/alerts/stream", params={"token": secret}).status_code == 401  # header only
        for person in client.get(f"{API}/watchlist", headers=tokens["viewer"]).json()["people"]:  # the test before's
            client.delete(f"{API}/watchlist/{person['id']}", headers=tokens["operator"])
        client.post(f"{API}/watchlist/track/{track_id}", headers=tokens["operator"], data={"name": "Cy"})
        events: list[dict[str, Any]] = []

        def follow() -> None:
            with client.stream("GET", f"{API}/alerts/stream", headers=tokens["viewer"]) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for text in stream.iter_lines():
                    if text.startswith("data: "):
                        events.append(json.loads(text[6:]))
                        return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(1.0)  # the stream is open: it sends alerts from now on
        listener = AlertListener(root, model.model_id, threshold=0.99)
        listener.on_tracks([update])
        listener.on_tracks([update])
        listener.close()
        reader.join(timeout=20)
        (alert,) = events
        assert (alert["person"]["name"], alert["track_id"], alert["detection_id"]) == ("Cy", track_id,
                                                                                       update.best_detection_id)
        assert alert["crop_url"] == f"{API}/crops/{update.best_detection_id}" and alert["latency_s"] >= 0.3
        crop = client.get(alert["crop_url"], headers=tokens["viewer"])
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        listed = client.get(f"{API}/alerts", headers=tokens["viewer"]).json()["alerts"]
        assert [a["id"] for a in listed] == [alert["id"]]
        # A client that reconnects after an earlier id gets what it missed, at once.
        with client.stream("GET", f"{API}/alerts/stream", headers={**tokens["viewer"], "Last-Event-ID": "0"}) as again:
            lines = again.iter_lines()
            assert next(line for line in lines if line.startswith("id: ")) == f"id: {alert['id']}"
    actions = [entry.action for entry in read_audit(root, limit=1000)]
    assert "alerts.stream" in actions and "alerts" in actions
