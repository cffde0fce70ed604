"""The write side: uploading a video (an ingest job), following and stopping jobs, deleting a video, purging.

An upload is judged by its first bytes (MP4/MOV, MKV, AVI; 415 otherwise), copied under ``<db>/uploads/`` with a
name the server makes up (the client's file name is only ever quoted in the audit log, never used as a path) through
a hidden partial file renamed into place, so a half-copied upload never looks like a video. ``JobRunner.submit``
then checks it as ``reidkit ingest`` would; a refused submission deletes the saved file again. The ingest itself
runs in a process of its own (``service.jobs``), so this answers 202 at once and the API keeps serving searches.

Deleting and purging need the store's writer lock, which a running ingest holds: they are refused with 409 rather
than left waiting. The server's store reader drops the deleted rows from its in-memory indexes at its next request
(the delete moves the store's ``commit_seq``), so no later search returns them. Every upload, cancel, resume, delete
and purge is written to the audit log.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, TypeVar

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from reidkit.errors import StoreBusyError
from reidkit.search.retention import PurgeReport, check_moment, delete_video, purge_before
from reidkit.search.rows import parse_time
from reidkit.search.store import DB_NAME, Store
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.jobs import Job, JobOptions, JobStateError, UnknownJobError, uploads_dir
from reidkit.service.limits import ApiError, video_kind
from reidkit.service.schemas import DeletedVideoModel, ErrorBody, JobModel, JobsResponse, PurgeRequest, PurgeResponse
from reidkit.service.services import API, ERRORS, ItemId, Services, admin, operator, services, viewer

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorBody, "description": "an ingest holds the store (retry when its job ends), or the job "
          "cannot do that in its present status"},
}
router = APIRouter(prefix=API, tags=["ingest and retention"], responses=WRITE_ERRORS)
_COPY_CHUNK = 1024 * 1024
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
    saved = save_upload(file.file, uploads_dir(state.root), state.settings.max_video_bytes)
    options = JobOptions(every=every, start_frame=start_frame, end_frame=end_frame)
    try:
        job = state.jobs.submit(saved, camera, start_time or None, options)
    except BaseException:
        saved.unlink(missing_ok=True)
        raise
    frames = f" frames {start_frame}-{'end' if end_frame is None else end_frame} every {every}"
    audit.record(state.root, caller, "ingest", f"upload {file.filename or 'video'!r} ({saved.stat().st_size} bytes) "
                 f"as job {job.id}: camera {job.camera!r}, start {start_time or 'unknown'},{frames}")
    return job.to_json()


@router.get("/jobs", response_model=JobsResponse, summary="The ingest jobs, newest first")
def list_jobs(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return {"jobs": [job.to_json() for job in services(request).jobs.list(limit)]}


@router.get("/jobs/{job_id}", response_model=JobModel, summary="An ingest job and its progress")
def get_job(request: Request, caller: Annotated[Caller, Depends(viewer)], job_id: ItemId) -> dict[str, Any]:
    with _job_errors():
        return services(request).jobs.get(job_id).to_json()


@router.delete("/jobs/{job_id}", response_model=JobModel, summary="Cancel an ingest job (it stays resumable)")
def cancel_job(request: Request, caller: Annotated[Caller, Depends(operator)], job_id: ItemId) -> dict[str, Any]:
    state = services(request)
    with _job_errors():
        job = state.jobs.cancel(job_id)
    audit.record(state.root, caller, "job.cancel", _job_text(job))
    return job.to_json()


@router.post("/jobs/{job_id}/resume", status_code=202, response_model=JobModel,
             summary="Resume an interrupted, cancelled or failed job after its last committed chunk")
def resume_job(request: Request, caller: Annotated[Caller, Depends(operator)], job_id: ItemId) -> dict[str, Any]:
    state = services(request)
    with _job_errors():
        job = state.jobs.resume(job_id)
    audit.record(state.root, caller, "job.resume", _job_text(job))
    return job.to_json()


@router.delete("/videos/{video_id}", response_model=DeletedVideoModel,
               summary="Delete a video with its tracks, crops, vectors and uploaded file")
def remove_video(request: Request, caller: Annotated[Caller, Depends(operator)], video_id: ItemId) -> dict[str, Any]:
    state = services(request)

    def delete(store: Store) -> dict[str, Any]:
        if store.db.execute("SELECT 1 FROM videos WHERE id = ?", (video_id,)).fetchone() is None:
            raise ApiError(404, "not_found", f"no video {video_id}")
        return delete_video(store, video_id).to_json()

    deleted = _writing(state, delete)
    if deleted is None:
        raise ApiError(404, "not_found", f"no video {video_id}")
    audit.record(state.root, caller, "video.delete", f"video {video_id} (camera {deleted['camera']!r}, "
                 f"{deleted['file']!r}): {deleted['tracks']} tracks, {deleted['detections']} crops",
                 deleted["detections"])
    return deleted


@router.post("/purge", response_model=PurgeResponse, summary="Delete every video whose footage ended before a time")
def purge(request: Request, caller: Annotated[Caller, Depends(admin)], body: PurgeRequest) -> dict[str, Any]:
    state = services(request)
    moment = parse_time(body.before, "before")
    check_moment(moment, "before")
    empty = PurgeReport(moment, body.dry_run)
    if body.dry_run:
        report = state.reader.call(lambda store: empty if store is None else purge_before(store, moment, True))
    else:
        report = _writing(state, lambda store: purge_before(store, moment)) or empty
    videos = ", ".join(str(video.id) for video in report.videos) or "none"
    audit.record(state.root, caller, "purge.dry_run" if body.dry_run else "purge",
                 f"before {moment.isoformat()}: videos {videos}; {report.tracks} tracks, {report.detections} crops",
                 len(report.videos))
    return report.to_json()


def save_upload(stream: BinaryIO, folder: Path, limit: int) -> Path:
    """Copy an uploaded video into ``folder`` under a generated name, refused by content (415) or size (413).
    Written to a hidden partial file first and renamed, so the folder never holds half a video under a real name."""
    head = stream.read(_COPY_CHUNK)
    if not head:
        raise ApiError(400, "empty_file", "file is empty")
    kind = video_kind(head[:16])
    if kind is None:
        raise ApiError(415, "unsupported_type", "file is not an MP4/MOV, MKV or AVI video (judged by its content)")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(8)}.{kind}"
    partial = folder / f".{name}.part"
    size = 0
    try:
        with open(partial, "xb") as out:
            while head:
                size += len(head)
                if size > limit:
                    raise ApiError(413, "too_large", f"file is over the limit of {limit / 1e6:.0f} MB")
                out.write(head)
                head = stream.read(_COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, folder / name)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return folder / name


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

