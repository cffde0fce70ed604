"""Uploaded footage through a real uvicorn server: a second copy of an unfinished job's video is refused up front, a
job that fails before storing anything deletes its upload, a purge deletes every upload nothing needs, and a job's
message shows a viewer no server folder. The ingest worker runs for real; its model is a checkpoint that is not
there, so it fails fast, before any model is loaded."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import cut_clip  # tests/ is on sys.path (rootdir conftest)

from reidkit.service import audit
from reidkit.service.access import Role, create_token
from reidkit.service.jobs import read_job, worker_alive
from reidkit.service.settings import ServiceSettings

API = "/api/v1"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> Path:
    return cut_clip(vtest_video, tmp_path_factory.mktemp("clip") / "short clip.mp4", 100, 20)


def uploads(db: Path) -> list[str]:
    folder = db / "uploads"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def wait_status(client: httpx.Client, headers: dict[str, str], job_id: int, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        answer = client.get(f"{API}/jobs/{job_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_uploads_nobody_needs_are_refused_or_deleted(tmp_path: Path, clip: Path, serve: Callable[..., str]) -> None:
    db = tmp_path / "store"
    # polled every 0.1 s while a job runs, longer under load: the per-token limit is not what this test is about
    url = serve(db, ServiceSettings(checkpoint=str(db / "models" / "missing.pt"), requests_per_minute=10_000))
    operator, viewer, admin = ({"Authorization": f"Bearer {create_token(db, role, role.name)[1]}"}
                               for role in (Role.operator, Role.viewer, Role.admin))

    def upload() -> httpx.Response:
        return client.post(f"{API}/videos", headers=operator, data={"camera": "cam1"},
                           files={"file": ("short clip.mp4", clip.read_bytes(), "video/mp4")})

    with httpx.Client(base_url=url, timeout=60) as client:
        for fields, start in (({"start_frame": "5000"}, "start_frame 5000 is past the end of "),
                              ({"start_frame": "10", "end_frame": "5"}, "end_frame 5 must be greater than start_frame"),
                              ({"camera": "lobby\x07"}, "camera 'lobby\\x07' contains control")):
            refused = client.post(f"{API}/videos", headers=operator, data={"camera": "cam1", **fields},
                                  files={"file": ("short clip.mp4", clip.read_bytes(), "video/mp4")})
            message = refused.json()["error"]["message"]
            assert refused.status_code == 400 and message.startswith(start) and "--" not in message, message
            assert str(tmp_path) not in message and "/" not in message
        assert uploads(db) == []
        first = upload()
        assert first.status_code == 202, first.text
        job = read_job(db, first.json()["id"])
        assert job.pid is not None
        os.killpg(job.pid, signal.SIGKILL)  # killed while it loads: interrupted, resumable, its file still needed
        while worker_alive(job.pid):
            time.sleep(0.05)
        assert wait_status(client, viewer, job.id, {"interrupted"})["status"] == "interrupted"
        assert client.delete(f"{API}/jobs/{job.id}", headers=operator).json()["status"] == "cancelled"
        again = upload()
        assert again.status_code == 409 and f"ingest job {job.id} (cancelled)" in again.json()["error"]["message"]
        assert uploads(db) == [Path(job.video_path).name]  # the second copy is gone again

        assert client.post(f"{API}/jobs/{job.id}/resume", headers=operator).status_code == 202
        failed = wait_status(client, viewer, job.id, {"failed"})
        assert "the uploaded file was deleted" in failed["message"] and "missing.pt" in failed["message"]
        assert uploads(db) == []
        shown = client.get(f"{API}/jobs", headers=viewer).text
        assert str(tmp_path) not in shown and str(tmp_path.resolve()) not in shown and "uploads/" not in shown
        gone = client.post(f"{API}/jobs/{job.id}/resume", headers=operator)
        assert gone.status_code == 409 and "upload the video again" in gone.json()["error"]["message"]

        orphan = db / "uploads" / "20240101T000000Z-0123456789abcdef-01234567.mp4"  # say, left by an older server
        orphan.write_bytes(clip.read_bytes())
        purged = client.post(f"{API}/purge", headers=admin, json={"before": "2024-01-01"})
        assert purged.status_code == 200 and purged.json()["videos"] == []
    assert uploads(db) == []
    entry = next(e for e in audit.read(db) if e.action == "purge")
    assert entry.target.endswith("; 1 uploaded files no video or job needed deleted")
