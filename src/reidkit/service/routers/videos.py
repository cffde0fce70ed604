"""The write side: uploading a video (an ingest job), following and stopping jobs, deleting a video, purging.

An upload is judged by its first bytes (MP4/MOV, MKV, AVI; 415 otherwise) and copied under ``<db>/uploads/``
(``service.uploads``). ``JobRunner.submit`` then checks it as ``reidkit ingest`` would, and refuses (409) a second
copy of an unfinished job's video; a refused submission deletes the saved file again. The ingest itself runs in a
process of its own (``service.jobs``), so this answers 202 at once and the API keeps serving searches. A job's
message is shown without the server's folders (``Services.scrub``). After a delete or a purge, every uploaded file
that neither a video nor an unfinished job needs is deleted too (``uploads.sweep``).

Deleting and purging need the store's writer lock, which a running ingest holds: they are refused with 409 rather
than left waiting. The server's store reader drops the deleted rows from its in-memory indexes at its next request
(the delete moves the store's ``commit_seq``), so no later search returns them. Every upload, cancel, resume, delete
and purge is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from reidkit.errors import StoreBusyError
from reidkit.search.retention import PurgeReport, check_moment, delete_video, purge_before
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.jobs import Job, JobOptions, JobStateError, UnknownJobError
from reidkit.service.limits import ApiError
from reidkit.service.schemas import DeletedVideoModel, ErrorBody, JobModel, JobsResponse, PurgeRequest, PurgeResponse
from reidkit.service.services import API, ERRORS, ItemId, Services, admin, operator, services, viewer
from reidkit.service.uploads import saved_upload, sweep, uploads_dir
from reidkit.store.layout import DB_NAME
from reidkit.store.rows import parse_time
from reidkit.store.writer import Store

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorBody, "description": "an ingest holds the store (retry when its job ends), or the job "
          "cannot do that in its present status"},
}
router = APIRouter(prefix=API, tags=["ingest and retention"], responses=WRITE_ERRORS)
_MAX_FRAME = 2**31 - 1
T = TypeVar("T")


@router.post("/videos", status_code=202, response_model=JobModel, summary="Upload a video: starts an ingest job")
def upload_video(
    request: Request,
    caller: Annotated[Caller, Depends(operator)],
    file: Annotated[UploadFile, File(description="the video (MP4/MOV, MKV or AVI, judged by its content)")],
    camera: Annotated[str, Form(min_length=1, max_length=200, description="the camera that recorded it")],
    start_time: Annotated[
        str | None, Form(max_length=64, description="ISO 8601 wall-clock time of its first frame")
    ] = None,
    every: Annotated[int, Form(ge=1, le=10_000, description="ingest every n-th frame")] = 1,
    start_frame: Annotated[int, Form(ge=0, le=_MAX_FRAME, description="first frame to ingest")] = 0,
    end_frame: Annotated[
        int | None, Form(ge=1, le=_MAX_FRAME, description="stop before this frame (default: the end)")
    ] = None,
) -> dict[str, Any]:
    state = services(request)
    options = JobOptions(every=every, start_frame=start_frame, end_frame=end_frame)
    with saved_upload(file.file, uploads_dir(state.root), state.settings.max_video_bytes) as saved, _job_errors():
        job = state.jobs.submit(saved, camera, start_time or None, options)
    frames = f" frames {start_frame}-{'end' if end_frame is None else end_frame} every {every}"
    audit.record(state.root, caller, "ingest", f"upload {audit.quoted(file.filename or 'video')} "
                 f"({saved.stat().st_size} bytes) as job {job.id}: camera {job.camera!r}, start "
                 f"{start_time or 'unknown'},{frames}")
    return _job_json(state, job)


@router.get("/jobs", response_model=JobsResponse, summary="The ingest jobs, newest first")
def list_jobs(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    state = services(request)
    return {"jobs": [_job_json(state, job) for job in state.jobs.list(limit)]}


@router.get("/jobs/{job_id}", response_model=JobModel, summary="An ingest job and its progress")
def get_job(request: Request, caller: Annotated[Caller, Depends(viewer)], job_id: ItemId) -> dict[str, Any]:
    state = services(request)
    with _job_errors():
        return _job_json(state, state.jobs.get(job_id))


@router.delete("/jobs/{job_id}", response_model=JobModel, summary="Cancel an ingest job (it stays resumable)")
def cancel_job(request: Request, caller: Annotated[Caller, Depends(operator)], job_id: ItemId) -> dict[str, Any]:
    state = services(request)
    with _job_errors():
        job = state.jobs.cancel(job_id)
    audit.record(state.root, caller, "job.cancel", _job_text(job))
    return _job_json(state, job)


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=JobModel,
             summary="Resume an interrupted, cancelled or failed job after its last committed chunk")
def resume_job(request: Request, caller: Annotated[Caller, Depends(operator)], job_id: ItemId) -> dict[str, Any]:
    state = services(request)
    with _job_errors():
        job = state.jobs.resume(job_id)
    audit.record(state.root, caller, "job.resume", _job_text(job))
    return _job_json(state, job)


@router.delete("/videos/{video_id}", response_model=DeletedVideoModel,
               summary="Delete a video with its tracks, crops, vectors and uploaded file")
def remove_video(request: Request, caller: Annotated[Caller, Depends(operator)], video_id: ItemId) -> dict[str, Any]:
    state = services(request)

    def delete(store: Store) -> tuple[dict[str, Any], list[str]]:
        if store.db.execute("SELECT 1 FROM videos WHERE id = ?", (video_id,)).fetchone() is None:
            raise ApiError(404, "not_found", f"no video {video_id}")
        return delete_video(store, video_id).to_json(), _sweep(state, store)

    done = _writing(state, delete)
    if done is None:
        raise ApiError(404, "not_found", f"no video {video_id}")
    deleted, swept = done
    audit.record(state.root, caller, "video.delete", f"video {video_id} (camera {deleted['camera']!r}, "
                 f"{deleted['file']!r}): {deleted['tracks']} tracks, {deleted['detections']} crops"
                 f"{audit.swept_text(swept)}",
                 deleted["detections"])
    return deleted


@router.post("/purge", response_model=PurgeResponse, summary="Delete every video whose footage ended before a time")
def purge(request: Request, caller: Annotated[Caller, Depends(admin)], body: PurgeRequest) -> dict[str, Any]:
    state = services(request)
    moment = parse_time(body.before, "before")
    check_moment(moment, "before")
    empty = PurgeReport(moment, body.dry_run)
    swept: list[str] = []
    if body.dry_run:
        report = state.reader.call(lambda store: empty if store is None else purge_before(store, moment, True))
    else:
        report, swept = _writing(state, lambda store: (purge_before(store, moment), _sweep(state, store))) or (
            empty, [])
    audit.record(state.root, caller, "purge.dry_run" if body.dry_run else "purge", audit.purge_target(report, swept),
                 len(report.videos))
    return report.to_json()


def _sweep(state: Services, store: Store) -> list[str]:
    """Delete the uploaded files that no video of ``store`` (open for writing) and no unfinished job needs."""
    videos = [str(path) for (path,) in store.db.execute("SELECT path FROM videos")]
    return sweep(state.root, [*videos, *state.jobs.needed_files()])


def _job_json(state: Services, job: Job) -> dict[str, Any]:
    """What the API shows of a job: its message without the server's folders (the worker words it for a log)."""
    shown = job.to_json()
    shown["message"] = state.scrub_paths(shown["message"])
    return shown


def _writing(state: Services, fn: Callable[[Store], T]) -> T | None:
    """``fn`` on the store opened for writing (None when no store exists yet); 409 while an ingest holds it."""
    if not (state.root / DB_NAME).is_file():
        return None
    try:
        with Store.open(state.root, writable=True) as store:
            return fn(store)
    except StoreBusyError:
        raise ApiError(409, "store_busy", "an ingest is writing to the store; retry when its job has ended (or "
                       "cancel the job)") from None


@contextmanager
def _job_errors() -> Iterator[None]:
    try:
        yield
    except UnknownJobError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except JobStateError as exc:
        raise ApiError(409, "job_state", str(exc)) from None


def _job_text(job: Job) -> str:
    video = "" if job.video_id is None else f", video {job.video_id}"
    return f"job {job.id} (camera {job.camera!r}, {Path(job.video_path).name!r}{video}): {job.status}"

