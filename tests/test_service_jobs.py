"""Ingest jobs as the service runs them: real worker processes ingesting frame ranges of the shared pedestrian video
into a real store. A job runs to ``done`` with rising progress, a second waits for the first, a cancelled job leaves
a resumable video that ``resume`` finishes without storing a frame twice, a SIGKILLed worker's job is
``interrupted`` after ``recover``, and a refused submission creates nothing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reidkit.errors import ConfigError, ReidkitError, StoreError, VideoError
from reidkit.service.jobs import (
    LOGS,
    Job,
    JobOptions,
    JobRunner,
    JobStateError,
    UnknownJobError,
    read_job,
    worker_alive,
)
from reidkit.store.layout import DB_NAME
from reidkit.store.writer import Store

START = "2024-05-01T09:00:00"
pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_no_frame_twice(db: Path) -> None:
    with Store.open(db) as store:
        assert store.integrity_problems() == []
        twice = store.db.execute(
            "SELECT COUNT(*) FROM (SELECT video_id, frame_index, x0, y0 FROM detections "
            "GROUP BY video_id, frame_index, x0, y0 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert twice == 0


def test_a_job_runs_to_done_while_the_next_waits(tmp_path: Path, vtest_video: Path) -> None:
    db = tmp_path / "db"
    runner = JobRunner(db, checkpoint="imagenet")
    first = runner.submit(vtest_video, "cam1", START, JobOptions(every=2, end_frame=40, chunk_frames=2))
    second = runner.submit(vtest_video, " cam2 ", None, JobOptions(every=2, start_frame=40, end_frame=60))
    assert (first.status, second.status, second.camera) == ("running", "queued", "cam2")
    assert worker_alive(first.pid)

    # Watched without polling: the finishing worker itself must start the queued job.
    progress: list[int] = []
    niceness = set()
    while not (job := read_job(db, first.id)).finished:
        progress.append(job.frames_done)
        if job.phase == "ingesting":
            try:  # the worker runs below the server's priority
                niceness.add(os.getpriority(os.PRIO_PROCESS, first.pid or 0) - os.getpriority(os.PRIO_PROCESS, 0))
            except ProcessLookupError:
                pass  # it just exited
        assert read_job(db, second.id).status == "queued"
        time.sleep(0.02)
    assert job.status == "done", job.message
    assert (job.frames_done, job.frames_total, job.video_id) == (20, 20, 1)
    assert progress == sorted(progress) and len(set(progress)) >= 3, progress
    assert job.message.startswith("video 1: 20 frames")
    assert niceness and min(niceness) > 0, niceness  # 10 unless the tests already run near the lowest priority
    wait_for(lambda: read_job(db, second.id).finished, "the queued job")
    done = runner.get(second.id)
    assert (done.status, done.frames_done, done.video_id) == ("done", 10, 2), done.message

    with Store.open(db) as store:
        videos = [(v.id, v.camera, v.status, v.last_committed_frame) for v in store.videos()]
        assert videos == [(1, "cam1", "done", 38), (2, "cam2", "done", 58)]
        assert store.summary().detections > 0
    assert_no_frame_twice(db)
    shown = done.to_json()
    assert shown["file"] == "vtest.avi" and "pid" not in shown and str(vtest_video.parent) not in str(shown)
    assert shown["progress"] == {"frames_done": 10, "frames_total": 10, "fraction": 1.0}
    assert [j.id for j in runner.list()] == [second.id, first.id]
    with pytest.raises(StoreError, match="already in store"):
        runner.submit(vtest_video, "cam1", START, JobOptions(every=2, end_frame=40))
    assert len(runner.list()) == 2


def test_a_cancelled_job_stays_resumable_and_resume_finishes_it(tmp_path: Path, vtest_video: Path) -> None:
    db = tmp_path / "db"
    runner = JobRunner(db, checkpoint="imagenet")
    job = runner.submit(vtest_video, "cam1", START, JobOptions(every=2, end_frame=200, chunk_frames=2))
    waiting = runner.submit(vtest_video, "cam2", START, JobOptions(every=2, start_frame=200, end_frame=220))
    assert runner.cancel(waiting.id).status == "cancelled"  # a queued job: no process to stop
    wait_for(lambda: read_job(db, job.id).frames_done >= 6, "progress")

    cancelled = runner.cancel(job.id)
    assert cancelled.status == "cancelled" and "video 1 stays resumable" in cancelled.message
    assert not worker_alive(job.pid)
    with Store.open(db) as store:
        video = store.video(1)
        assert video.status == "ingesting"  # never looks complete
        assert 10 <= video.last_committed_frame < 198
        assert store.summary().videos == 1  # the cancelled queued job never started
    assert_no_frame_twice(db)
    stopped_at = video.last_committed_frame
    time.sleep(0.5)
    assert read_job(db, job.id) == runner.get(job.id)  # nothing runs: no queued job was started
    with pytest.raises(JobStateError, match="cancelled"):
        runner.cancel(job.id)

    resumed = runner.resume(job.id)
    assert resumed.status == "running" and resumed.message == ""
    wait_for(lambda: runner.get(job.id).finished, "the resumed job")
    finished = runner.get(job.id)
    assert finished.status == "done", finished.message
    assert f"resumed after frame {stopped_at}" in finished.message
    assert (finished.frames_done, finished.frames_total) == (100, 100)
    with Store.open(db) as store:
        video = store.video(1)
        assert (video.status, video.last_committed_frame) == ("done", 198)
        frames = {row[0] for row in store.db.execute("SELECT DISTINCT frame_index FROM detections")}
        assert frames <= set(range(0, 200, 2))
    assert_no_frame_twice(db)
    assert runner.get(waiting.id).status == "cancelled"
    with pytest.raises(JobStateError, match="done"):
        runner.resume(job.id)
    with pytest.raises(UnknownJobError, match="no ingest job 99"):
        runner.get(99)


def test_a_killed_worker_is_interrupted_after_recover(tmp_path: Path, vtest_video: Path) -> None:
    db = tmp_path / "db"
    job = JobRunner(db, checkpoint="imagenet").submit(
        vtest_video, "cam1", START, JobOptions(every=2, end_frame=200, chunk_frames=2)
    )
    wait_for(lambda: read_job(db, job.id).frames_done >= 4, "progress")
    assert job.pid is not None
    os.kill(job.pid, signal.SIGKILL)
    wait_for(lambda: not worker_alive(job.pid), "the worker to die")  # a zombie does not count as alive
    assert read_job(db, job.id).status == "running"  # nobody has looked yet

    restarted = JobRunner(db, checkpoint="imagenet")  # as a server starting again
    interrupted = restarted.recover()
    assert [j.id for j in interrupted] == [job.id]
    seen: Job = restarted.get(job.id)
    assert seen.status == "interrupted" and "resume" in seen.message and seen.pid is None
    with Store.open(db) as store:
        assert store.video(1).status == "ingesting"
    assert_no_frame_twice(db)
    assert restarted.recover() == []


def test_a_refused_submission_creates_nothing(tmp_path: Path, vtest_video: Path) -> None:
    db = tmp_path / "db"
    runner = JobRunner(db)
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    refused: list[tuple[Path, str, str | None, JobOptions, type[ReidkitError], str]] = [
        (tmp_path / "missing.mp4", "cam1", None, JobOptions(), ConfigError, "'missing.mp4' does not exist"),
        (vtest_video, "cam\x1b[31m", None, JobOptions(), ConfigError, "control character"),
        (vtest_video, "   ", None, JobOptions(), ConfigError, "must name the camera"),
        (vtest_video, "cam1", "yesterday", JobOptions(), ConfigError, "start_time 'yesterday' is not an ISO 8601"),
        (vtest_video, "cam1", None, JobOptions(start_frame=30, end_frame=10), ConfigError, "^end_frame 10"),
        (vtest_video, "cam1", None, JobOptions(start_frame=5000), ConfigError, "past the end"),
        (vtest_video, "cam1", None, JobOptions(every=0), ConfigError, "^every and chunk_frames"),
        (not_a_video, "cam1", None, JobOptions(), VideoError, "notes.mp4"),
    ]
    for video, camera, start_time, options, error, message in refused:
        with pytest.raises(error, match=message):
            runner.submit(video, camera, start_time, options)
    assert runner.list() == []
    assert not (db / DB_NAME).exists() and not (db / LOGS).exists()
