"""The service's write side through a real uvicorn server: who may upload, delete and purge; an uploaded clip ingested
by a job while searches keep answering; deleting that video so no search returns it again; cancelling a running job;
a restarted server (``reidkit serve``, the worker SIGKILLed meanwhile) showing the job interrupted and resumable; and
an audited purge. The clip is a real MP4 cut from the shared pedestrian video with PyAV."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)

from reidkit.service import audit
from reidkit.service.access import Role, create_token
from reidkit.service.jobs import read_job, worker_alive
from reidkit.service.settings import ServiceSettings
from reidkit.store.writer import Store

REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"
CLIP_START, CLIP_FRAMES = 100, 200  # frames of vtest.avi (10 fps): 20 s that small_store (frames 0-59) lacks



@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> Path:
    return cut_clip(vtest_video, tmp_path_factory.mktemp("clip") / "lobby clip.mp4", CLIP_START, CLIP_FRAMES)


def bearer(db: Path, role: Role, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, role, name)[1]}"}


def upload(client: httpx.Client, headers: dict[str, str], content: bytes, **fields: str) -> httpx.Response:
    return client.post(f"{API}/videos", headers=headers, data={"camera": "cam2", **fields},
                       files={"file": ("lobby clip.mp4", content, "video/mp4")})


def uploads(db: Path) -> list[str]:
    folder = db / "uploads"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def wait_job(client: httpx.Client, headers: dict[str, str], job_id: int, until: Callable[[dict[str, Any]], bool],
             timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"{API}/jobs/{job_id}", headers=headers).json()
        if until(job):
            return job
        assert time.monotonic() < deadline and job["status"] in ("queued", "running"), job
        time.sleep(0.1)


def longest_track_crop(root: Path) -> Path:
    with Store.open(root) as store:
        (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        return root / store.track_detections(track_id)[1].crop_path


def test_roles_content_and_refused_submissions(tmp_path: Path, clip: Path, serve: Callable[..., str]) -> None:
    db = tmp_path / "store"
    url = serve(db)
    viewer, operator, admin = (bearer(db, role, role.name) for role in (Role.viewer, Role.operator, Role.admin))
    with httpx.Client(base_url=url, timeout=60) as client:
        denied = {
            "upload": upload(client, viewer, clip.read_bytes()),
            "delete": client.delete(f"{API}/videos/1", headers=viewer),
            "cancel": client.delete(f"{API}/jobs/1", headers=viewer),
            "resume": client.post(f"{API}/jobs/1/resume", headers=viewer),
            "purge": client.post(f"{API}/purge", headers=viewer, json={"before": "2024-01-01"}),
            "operator purge": client.post(f"{API}/purge", headers=operator, json={"before": "2024-01-01"}),
        }
        assert {name: r.status_code for name, r in denied.items()} == dict.fromkeys(denied, 403)
        assert uploads(db) == []

        html = upload(client, operator, b"<html><body>not a video</body></html>" * 10)
        assert html.status_code == 415 and html.json()["error"]["code"] == "unsupported_type"
        bad_time = upload(client, operator, clip.read_bytes(), start_time="yesterday")
        assert bad_time.status_code == 400 and "start_time 'yesterday'" in bad_time.json()["error"]["message"]
        past_end = upload(client, operator, clip.read_bytes(), start_frame="5000")
        assert past_end.status_code == 400 and "past the end" in past_end.json()["error"]["message"]
        assert str(db) not in past_end.text
        zero = upload(client, operator, clip.read_bytes(), every="0")
        assert zero.status_code == 422 and zero.json()["error"]["message"].startswith("every:")
        assert uploads(db) == []  # every refused upload's file is gone again, partial copies included

        assert client.get(f"{API}/jobs", headers=viewer).json() == {"jobs": []}
        assert client.get(f"{API}/jobs/7", headers=viewer).json()["error"]["code"] == "not_found"
        assert client.delete(f"{API}/videos/3", headers=operator).status_code == 404
        future = client.post(f"{API}/purge", headers=admin, json={"before": "2999-01-01"})
        assert future.status_code == 400 and "in the future" in future.json()["error"]["message"]
        nothing = client.post(f"{API}/purge", headers=admin, json={"before": "2024-01-01T00:00:00"})
        assert nothing.status_code == 200 and nothing.json()["videos"] == []
    entries = audit.read(db)
    assert [e.who for e in entries if e.action == "denied"] == ["operator"] + ["viewer"] * 5
    assert [e.action for e in entries if e.who == "admin"] == ["purge"]


@pytest.mark.slow
def test_an_upload_is_ingested_while_searches_answer_then_deleted(
    small_store: Path, clip: Path, tmp_path: Path, serve: Callable[..., str]
) -> None:
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    viewer, operator, admin = (bearer(root, role, role.name) for role in (Role.viewer, Role.operator, Role.admin))
    query = longest_track_crop(root)

    def search(**fields: str) -> httpx.Response:
        return client.post(f"{API}/search", headers=viewer, data={"top_k": "100", **fields},
                           files={"image": (query.name, query.read_bytes(), "image/jpeg")})

    with httpx.Client(base_url=url, timeout=120) as client:
        before = client.get(f"{API}/health", headers=viewer).json()["counts"]
        accepted = upload(client, operator, clip.read_bytes(), start_time="2024-05-01T10:00:00", every="2",
                          end_frame="20")
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["status"] == "running" and job["camera"] == "cam2" and job["options"]["every"] == 2
        assert uploads(root) == [job["file"]] and job["file"].endswith(".mp4") and "clip" not in job["file"]

        latencies, while_ingesting = [], 0
        while job["status"] == "running":
            assert client.get(f"{API}/health").status_code == 200
            started = time.perf_counter()
            found = search()
            latencies.append(time.perf_counter() - started)
            assert found.status_code == 200, found.text
            job = client.get(f"{API}/jobs/{job['id']}", headers=viewer).json()
            while_ingesting += job["phase"] == "ingesting"
        assert job["status"] == "done", job["message"]
        assert job["progress"] == {"frames_done": 10, "frames_total": 10, "fraction": 1.0}
        assert while_ingesting >= 1 and max(latencies) < 10, latencies  # the ingest runs in its own process

        after = client.get(f"{API}/health", headers=viewer).json()["counts"]
        video_id = job["video_id"]
        assert after["videos"] == before["videos"] + 1 and after["detections"] > before["detections"]
        shown = next(v for v in client.get(f"{API}/videos", headers=viewer).json()["videos"] if v["id"] == video_id)
        assert (shown["camera"], shown["file"], shown["status"]) == ("cam2", job["file"], "done")
        theirs = {hit["track_id"] for hit in search(camera="cam2").json()["hits"]}
        assert theirs and {hit["video_id"] for hit in search().json()["hits"]} == {1, video_id}

        assert client.delete(f"{API}/videos/{video_id}", headers=viewer).status_code == 403
        deleted = client.delete(f"{API}/videos/{video_id}", headers=operator)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["detections"] == after["detections"] - before["detections"]
        assert deleted.json()["file_deleted"] and uploads(root) == []
        assert not (root / "crops" / f"v{video_id:06d}").exists()
        assert client.get(f"{API}/health", headers=viewer).json()["counts"] == before
        hits = search().json()["hits"]
        assert hits and {hit["video_id"] for hit in hits} == {1} and not theirs & {hit["track_id"] for hit in hits}
        gone = client.post(f"{API}/search/track/{min(theirs)}", headers=viewer)
        assert gone.status_code == 404
        assert client.delete(f"{API}/videos/{video_id}", headers=operator).status_code == 404
        log = client.get(f"{API}/audit", headers=admin, params={"limit": 1000}).json()["entries"]
    actions = {entry["action"]: entry for entry in reversed(log)}
    assert actions["ingest"]["who"] == "operator" and "'lobby clip.mp4'" in actions["ingest"]["target"]
    assert actions["video.delete"]["hits"] == deleted.json()["detections"]
    with Store.open(root) as store:
        assert store.integrity_problems() == []


@contextmanager
def reidkit_serve(db: Path) -> Iterator[str]:
    """``reidkit serve`` as a process of its own, so that it can be stopped and started like a real server."""
    process = subprocess.Popen([str(REIDKIT), "serve", "--db", str(db), "--port", "0", "--rate-limit", "10000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        port = re.search(r"on http://127\.0\.0\.1:(\d+)/api/v1", process.stderr.readline())
        assert port, "reidkit serve did not print its address"
        url = f"http://127.0.0.1:{port[1]}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}{API}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "reidkit serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.mark.slow
def test_a_restart_leaves_the_job_interrupted_resumable_and_cancellable(
    small_store: Path, clip: Path, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    operator, admin = bearer(root, Role.operator, "ops"), bearer(root, Role.admin, "root")
    with reidkit_serve(root) as url, httpx.Client(base_url=url, timeout=120) as client:
        job = upload(client, operator, clip.read_bytes(), start_time="2024-05-01T10:00:00").json()
        job = wait_job(client, operator, job["id"], lambda j: j["progress"]["frames_done"] >= 20)
        busy = client.delete(f"{API}/videos/1", headers=operator)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "store_busy"
        busy = client.post(f"{API}/purge", headers=admin, json={"before": "2024-06-01"})
        assert busy.status_code == 409
    pid = read_job(root, job["id"]).pid
    assert worker_alive(pid)  # the worker outlives its server (a session of its own)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while worker_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    with reidkit_serve(root) as url, httpx.Client(base_url=url, timeout=120) as client:
        seen = client.get(f"{API}/jobs/{job['id']}", headers=operator).json()
        assert seen["status"] == "interrupted" and "resume" in seen["message"], seen
        with Store.open(root) as store:
            video = store.video(seen["video_id"])
            assert video.status == "ingesting" and video.last_committed_frame >= 19
        resumed = client.post(f"{API}/jobs/{job['id']}/resume", headers=operator)
        assert resumed.status_code == 202 and resumed.json()["status"] == "running", resumed.text
        running = wait_job(client, operator, job["id"], lambda j: j["phase"] == "ingesting")
        cancelled = client.delete(f"{API}/jobs/{job['id']}", headers=operator)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        assert f"video {running['video_id']} stays resumable" in cancelled.json()["message"]
        assert not worker_alive(read_job(root, job["id"]).pid)
        again = client.delete(f"{API}/jobs/{job['id']}", headers=operator)
        assert again.status_code == 409 and again.json()["error"]["code"] == "job_state"
        listed = client.get(f"{API}/jobs", headers=operator).json()["jobs"]
        assert [(j["id"], j["status"]) for j in listed] == [(job["id"], "cancelled")]
    with Store.open(root) as store:
        assert store.video(running["video_id"]).status == "ingesting"  # never looks complete
        assert store.integrity_problems() == []
    actions = [entry.action for entry in audit.read(root)]
    assert actions[:3] == ["job.cancel", "job.resume", "ingest"]


@pytest.mark.slow
def test_an_admin_purges_old_footage_and_the_purge_is_audited(
    small_store: Path, tmp_path: Path, serve: Callable[..., str]
) -> None:
    root = tmp_path / "store"
    shutil.copytree(small_store, root)
    url = serve(root)
    admin, viewer = bearer(root, Role.admin, "boss"), bearer(root, Role.viewer, "eyes")
    query = longest_track_crop(root).read_bytes()  # before its file is purged
    with httpx.Client(base_url=url, timeout=120) as client:
        before = client.get(f"{API}/health", headers=viewer).json()["counts"]
        kept = client.post(f"{API}/purge", headers=admin, json={"before": "2024-05-01T09:00:03"})
        assert kept.status_code == 200 and kept.json()["videos"] == []  # the footage runs until 09:00:06
        dry = client.post(f"{API}/purge", headers=admin, json={"before": "2024-06-01", "dry_run": True}).json()
        assert [v["id"] for v in dry["videos"]] == [1] and dry["detections"] == before["detections"]
        assert client.get(f"{API}/health", headers=viewer).json()["counts"] == before
        done = client.post(f"{API}/purge", headers=admin, json={"before": "2024-06-01"})
        assert done.status_code == 200 and done.json()["tracks"] == before["tracks"]
        assert client.get(f"{API}/health", headers=viewer).json()["counts"] == dict.fromkeys(before, 0)
        empty = client.post(f"{API}/search", headers=viewer, files={"image": ("q.jpg", query, "image/jpeg")})
        assert empty.status_code == 409 and empty.json()["error"]["code"] == "empty_store"
    assert not (root / "crops" / "v000001").exists()
    purges = [(e.action, e.who, e.hits, e.target) for e in audit.read(root) if e.action.startswith("purge")]
    assert [p[:3] for p in purges] == [("purge", "boss", 1), ("purge.dry_run", "boss", 1), ("purge", "boss", 0)]
    assert purges[0][3].startswith("before 2024-06-01T00:00:00: videos 1;")
