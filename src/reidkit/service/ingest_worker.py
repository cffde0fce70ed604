"""The process that runs one ingest job: ``python -m reidkit.service.ingest_worker DB JOB_ID``.

It runs the very code path of ``reidkit ingest`` (probe, plan, ``choose_model`` / ``choose_detector`` defaults,
``search.ingest_video``), writes its progress into the job's row a few times a second at most, ends the job ``done``
or ``failed`` with a one-line message, and then starts the next queued job (``jobs.start_next``), so a queue drains
even when no server is polling. Started by ``jobs.JobRunner`` only; a bug's traceback goes to the job's log file.
A job that fails before storing any frame deletes its uploaded file: nothing refers to that footage any more, and
surveillance video must not linger in a folder nobody looks at (a job that stored frames keeps it, to resume).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from reidkit.errors import ReidkitError
from reidkit.search.ingest import OPEN_END
from reidkit.service.jobs import Job, ingest_options_of, read_job, set_job, start_next
from reidkit.service.uploads import uploads_dir
from reidkit.store.rows import VideoRecord

_PROGRESS_EVERY_S = 0.25
# Below the server's priority: on a small machine the API keeps answering searches while an ingest takes every core.
_NICENESS = 10


class _Progress:
    """``ingest_video``'s ``on_commit``: frames committed so far (of the job's every-n-th frame grid), written at
    most every 0.25 s; ``flush`` writes the last count."""

    def __init__(self, db: Path, job: Job) -> None:
        self.db, self.job = db, job
        self.written_at = 0.0
        self.fields: dict[str, Any] = {}

    def __call__(self, video: VideoRecord, last_frame: int) -> None:
        every, start = video.every_n, video.start_frame
        done = 0 if last_frame < start else (last_frame - start) // every + 1
        total = None if video.end_frame >= OPEN_END else -(-(video.end_frame - start) // every)
        self.fields = {"phase": "ingesting", "video_id": video.id, "frames_done": done, "frames_total": total}
        if time.monotonic() - self.written_at >= _PROGRESS_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.fields:
            set_job(self.db, self.job.id, **self.fields)
            self.written_at = time.monotonic()


def run_job(db: Path, job_id: int) -> None:
    """Ingest the job's video into the store at ``db`` and record how it ended."""
    from reidkit.search.ingest import check_options, ingest_video, plan_ingest
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    job = read_job(db, job_id)
    if job.status != "running":
        return  # cancelled before this process got going
    progress = _Progress(db, job)
    try:
        options = ingest_options_of(job.camera, job.start_time, job.options)
        info = probe_video(job.video_path)
        check_options(options, info)
        with Store.open(db, writable=True, create=True) as store:
            plan_ingest(store, info, options)
            choice = choose_model(job.checkpoint, store.model, backend="auto")
            detector = choose_detector(None)
            report = ingest_video(store, info, options, choice.extractor, detector, choice.source, progress)
        progress.flush()
    except ReidkitError as exc:
        progress.flush()
        set_job(db, job_id, status="failed", phase="ended", pid=None,
                message=_one_line(str(exc)) + _drop_unused_upload(db, job_id))
        return
    except Exception as exc:
        traceback.print_exc()
        progress.flush()
        set_job(db, job_id, status="failed", phase="ended", pid=None,
                message=_one_line(f"internal error ({type(exc).__name__}: {exc}); see the job's log")
                + _drop_unused_upload(db, job_id))
        return
    resumed = f", resumed after frame {report.resumed_after}" if report.resumed_after is not None else ""
    set_job(
        db, job_id, status="done", phase="ended", pid=None,
        message=f"video {report.video_id}: {report.frames} frames, {report.detections} crops, {report.tracks} tracks "
        f"in {report.seconds:.1f} s{resumed}",
    )


def _drop_unused_upload(db: Path, job_id: int) -> str:
    """Delete the failed job's file when it is an upload and the job stored nothing (no video row names it); what
    to add to the job's message."""
    job = read_job(db, job_id)
    path = Path(job.video_path)
    if job.video_id is not None or not path.resolve().is_relative_to(uploads_dir(db).resolve()):
        return ""
    path.unlink(missing_ok=True)
    return "; the uploaded file was deleted (nothing was stored): upload the video again to retry"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m reidkit.service.ingest_worker DB JOB_ID", file=sys.stderr)
        return 2
    db = Path(args[0])
    try:
        os.nice(_NICENESS)
    except OSError:
        pass  # not allowed here: run at normal priority
    try:
        run_job(db, int(args[1]))
    finally:
        start_next(db)  # the next queued job, whatever became of this one
    return 0


if __name__ == "__main__":
    sys.exit(main())
