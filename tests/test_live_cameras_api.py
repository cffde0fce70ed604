"""Live cameras over the HTTP API, on a real uvicorn server: an admin registers an RTSP camera (served on loopback),
the service's watcher process ingests it, a viewer reads its health; roles, bad fields, credentials kept out of
every answer, the audit trail, and removal stopping the watcher."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)
from live_rtsp import RtspServer, rtsp_server_fixture, wait_for  # noqa: F401 - the rtsp_server fixture
from reidkit.service.access import Role, create_token
from reidkit.service.live_worker import stop_live_worker, worker_alive
from reidkit.service.settings import ServiceSettings
from reidkit.store.layout import DB_NAME

API = "/api/v1"
pytestmark = pytest.mark.slow


def bearer(db: Path, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, role, role.name)[1]}"}


def audit_actions(db: Path) -> list[str]:
    with sqlite3.connect(db / "service.sqlite") as connection:
        return [row[0] for row in connection.execute("SELECT action FROM audit ORDER BY id")]


def test_roles_and_bad_fields(tmp_path: Path, serve: Callable[..., str], vtest_video: Path) -> None:
    db = tmp_path / "store"
    db.mkdir()
    admin, operator, viewer = (bearer(db, role) for role in (Role.admin, Role.operator, Role.viewer))
    base = serve(db)
    camera = {"name": "door", "url": "rtsp://127.0.0.1:9/none"}
    with httpx.Client(base_url=base + API, timeout=30) as client:
        assert client.post("/cameras", json=camera).status_code == 401
        for refused in (operator, viewer):
            assert client.post("/cameras", json=camera, headers=refused).status_code == 403
            assert client.delete("/cameras/door", headers=refused).status_code == 403
            assert client.get("/cameras/live", headers=refused).status_code == 403
        assert client.get("/cameras/health", headers=viewer).json() == {"cameras": []}
        bad_name = client.post("/cameras", json={**camera, "name": "front door"}, headers=admin)
        assert bad_name.status_code == 400 and bad_name.json()["error"]["message"].startswith("name:")
        bad_url = client.post("/cameras", json={**camera, "url": "ftp://user:pw@host/x"}, headers=admin)
        assert bad_url.status_code == 400 and bad_url.json()["error"]["message"].startswith("url:")
        assert "pw" not in bad_url.text
        missing = client.post("/cameras", json={**camera, "url": str(tmp_path / "nothing.mp4")}, headers=admin)
        assert missing.status_code == 400 and str(tmp_path) not in missing.text
        assert client.delete("/cameras/door", headers=admin).status_code == 404
        assert client.get("/cameras/live", headers=admin).json() == {"cameras": [], "watcher_running": False}
    assert audit_actions(db).count("camera.list") == 1
    assert not (db / "live.sqlite").exists()  # reads and refusals made nothing in the store folder


def test_registered_camera_is_ingested_and_its_health_shown(
    tmp_path: Path, serve: Callable[..., str], vtest_video: Path, rtsp_server: Callable[[Path], RtspServer]
) -> None:
    clip = cut_clip(vtest_video, tmp_path / "clip.mp4", 0, 200)
    server = rtsp_server(clip)
    db = tmp_path / "store"
    db.mkdir()
    admin, viewer = bearer(db, Role.admin), bearer(db, Role.viewer)
    base = serve(db, ServiceSettings(checkpoint="imagenet"))
    secret_url = server.url.replace("rtsp://", "rtsp://viewer:hunter2@")
    try:
        with httpx.Client(base_url=base + API, timeout=30) as client:
            added = client.post("/cameras", json={"name": "door", "url": secret_url, "every": 2}, headers=admin)
            assert added.status_code == 201, added.text
            assert added.json()["url"] == server.url and "hunter2" not in added.text
            listed = client.get("/cameras/live", headers=admin).json()
            assert listed["watcher_running"] and [c["name"] for c in listed["cameras"]] == ["door"]

            def live() -> bool:
                cameras = client.get("/cameras/health", headers=viewer).json()["cameras"]
                return bool(cameras) and cameras[0]["state"] == "live" and cameras[0]["fps"] > 0
            wait_for(live, 120, "the camera to be live")
            (health,) = client.get("/cameras/health", headers=viewer).json()["cameras"]
            assert health["camera"] == "door" and health["last_frame_epoch"] > 0 and health["reconnects"] == 0
            assert "hunter2" not in client.get("/cameras/health", headers=viewer).text
            assert client.get("/cameras", headers=viewer).status_code == 200  # the store's own list is unchanged
            wait_for(lambda: _videos(db), 60, "a committed segment")
            assert _videos(db) == [("door", server.url)]  # no credentials in the store either
            pid = _worker_pid(db)
            # A second camera: the running watcher notices the new list and restarts with both (same process).
            assert client.post("/cameras", json={"name": "hall", "url": server.url, "every": 2},
                               headers=admin).status_code == 201

            def both_live() -> bool:
                cameras = client.get("/cameras/health", headers=viewer).json()["cameras"]
                return sorted((c["camera"], c["state"]) for c in cameras) == [("door", "live"), ("hall", "live")]
            wait_for(both_live, 60, "both cameras live")
            assert _worker_pid(db) == pid and worker_alive(pid)
            assert client.delete("/cameras/hall", headers=admin).status_code == 200
            removed = client.delete("/cameras/door", headers=admin)
            assert removed.status_code == 200 and removed.json()["name"] == "door"
            wait_for(lambda: not worker_alive(pid), 60, "the watcher to stop with no camera left")
            assert client.get("/cameras/health", headers=viewer).json() == {"cameras": []}
        with sqlite3.connect(db / DB_NAME) as connection:  # every session row finished by the clean stops
            assert {row[0] for row in connection.execute("SELECT status FROM videos")} == {"done"}
        actions = audit_actions(db)
        assert "camera.add" in actions and "camera.remove" in actions
    finally:
        stop_live_worker(db)


def _videos(db: Path) -> list[tuple[str, str]]:
    if not (db / DB_NAME).is_file():
        return []
    with sqlite3.connect(f"file:{db / DB_NAME}?mode=ro", uri=True) as connection:
        try:
            return connection.execute("SELECT c.name, v.path FROM videos v JOIN cameras c ON c.id = v.camera_id "
                                      "WHERE v.last_committed_frame >= 0").fetchall()
        except sqlite3.OperationalError:  # the watcher has made the file but not yet its tables
            return []


def _worker_pid(db: Path) -> int:
    with sqlite3.connect(db / "live.sqlite") as connection:
        return int(connection.execute("SELECT pid FROM live_worker").fetchone()[0])
