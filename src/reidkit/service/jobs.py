"""Ingest jobs: every uploaded video is ingested by a process of its own, one at a time per store, its progress in a
row of ``<db>/service.sqlite``.

Why processes: an ingest keeps the cores busy for minutes and holds the store's writer lock. In a separate process
(``python -m reidkit.service.ingest_worker DB JOB``, in a session of its own) the API stays responsive, a crash of the
ingest cannot take the server down, and cancelling is terminating one process group. The store's chunked commits
make every ending safe: a cancelled or killed ingest leaves the store's video ``ingesting`` (never looking complete)
and resumable from its last committed chunk, by ``JobRunner.resume`` or by ``reidkit ingest`` with the same options.

A job goes ``queued`` -> ``running`` -> ``done`` | ``failed`` (with a one-line message) | ``cancelled`` |
``interrupted`` (its process died without saying how: a server restart, SIGKILL, out of memory). Queued jobs start in
submission order while no job runs: a finishing worker starts the next one itself, and ``JobRunner.poll`` (run by
every read) does when a worker died. Which job may start is decided inside one ``BEGIN IMMEDIATE`` transaction, so
two starters never start two ingests. A worker outlives a server restart (it runs in its own session): the restarted
server finds its job still running, and ``recover`` marks only jobs whose worker is gone.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reidkit.errors import ConfigError, ReidkitError, StoreError
from reidkit.service.service_db import connect_new
from reidkit.service.uploads import digest_of

if TYPE_CHECKING:
    from reidkit.search.ingest import IngestOptions

ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "cancelled", "failed")
UNFINISHED = (*ACTIVE, "interrupted", "cancelled")  # jobs that still need their video file
LOGS = "job-logs"  # <db>/job-logs/job-<id>.log: the worker's output, where a bug's traceback ends up
_WORKER_MODULE = "reidkit.service.ingest_worker"
_STOP_WAIT_S = 10.0



class UnknownJobError(ReidkitError):
    """No job has this id (the API answers 404)."""


class JobStateError(ReidkitError):
    """The job cannot do that in its present status, e.g. cancel a finished job (the API answers 409)."""


class DuplicateUploadError(JobStateError):
    """The upload is the same video as an unfinished job's: that job is the one to resume (the API answers 409)."""


@dataclass(frozen=True)
class JobOptions:
    """The ``reidkit ingest`` options a job may set: which frames (``every``, ``start_frame``, ``end_frame``) and
    how many sampled frames go into one commit."""

    every: int = 1
    start_frame: int = 0
    end_frame: int | None = None
    chunk_frames: int = 20


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    phase: str
    video_path: str
    camera: str
    start_time: str | None
    options: JobOptions
    checkpoint: str | None
    frames_done: int
    frames_total: int | None
    video_id: int | None
    message: str
    pid: int | None
    created_at: str
    updated_at: str

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE

    def to_json(self) -> dict[str, Any]:
        """What the API shows: no process id and no server path, only the file's name."""
        fraction = None
        if self.frames_total:
            fraction = round(min(1.0, self.frames_done / self.frames_total), 4)
        return {
            "id": self.id,
            "status": self.status,
            "phase": self.phase,
            "file": Path(self.video_path).name,
            "camera": self.camera,
            "start_time": self.start_time,
            "options": asdict(self.options),
            "progress": {"frames_done": self.frames_done, "frames_total": self.frames_total, "fraction": fraction},
            "video_id": self.video_id,
            "message": self.message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class JobRunner:
    """The jobs of the store in ``db``. Cheap to create; one per server process (it reaps the workers it started)."""

    def __init__(self, db: Path, checkpoint: str | None = None) -> None:
        self.db = Path(db)
        self.checkpoint = checkpoint
        self._children: builtins.list[subprocess.Popen[bytes]] = []

    # --- the API's calls ------------------------------------------------------------------------------------------
    def submit(
        self, video: Path, camera: str, start_time: str | None = None, options: JobOptions | None = None
    ) -> Job:
        """Queue an ingest of ``video`` (and start it when no other runs). Everything is checked first, as
        ``reidkit ingest`` checks it: a refused job (``ReidkitError``: bad camera, time, frame range, unreadable
        video, frames already in the store) creates no row and no process."""
        from reidkit.search.ingest import check_options, plan_ingest
        from reidkit.store.layout import DB_NAME
        from reidkit.store.writer import Store
        from reidkit.video import probe_video

        options = options or JobOptions()
        ingest_options = ingest_options_of(camera, start_time, options)
        check_options(ingest_options)
        path = Path(video).absolute()
        if not path.is_file():
            raise ConfigError(f"video file {path.name!r} does not exist")
        self._refuse_duplicate(path)
        info = probe_video(path)
        check_options(ingest_options, info)
        if (self.db / DB_NAME).is_file():
            try:
                store = Store.open(self.db)
            except StoreError:
                store = None  # e.g. the first job is creating it right now: its worker checks again
            if store is not None:
                with store:
                    plan_ingest(store, info, ingest_options)
        now = _now()
        with self._connection() as connection:
            cursor = connection.execute(
                "INSERT INTO jobs(status, phase, video_path, camera, start_time, options, checkpoint, created_at, "
                "updated_at) VALUES ('queued', 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (str(path), ingest_options.camera, start_time, json.dumps(asdict(options)), self.checkpoint, now, now),
            )
            job_id = int(cursor.lastrowid or 0)
        self.poll()
        return self.get(job_id, refresh=False)

    def get(self, job_id: int, refresh: bool = True) -> Job:
        """The job as it stands (after ``poll``, so a dead worker already shows as ``interrupted``)."""
        if refresh:
            self.poll()
        with self._connection() as connection:
            return _read(connection, job_id)

    def cancel(self, job_id: int) -> Job:
        """Stop a queued, running or interrupted job: a running worker's process group is terminated (SIGTERM, then
        SIGKILL after 10 s) and waited for. The store's video stays ``ingesting``: ``resume`` continues it."""
        with self._connection() as connection, _immediate(connection):
            job = _read(connection, job_id)
            if job.status not in (*ACTIVE, "interrupted"):
                raise JobStateError(
                    f"ingest job {job_id} is {job.status}; only a queued, running or interrupted job can be cancelled"
                )
            kept = f"video {job.video_id} stays resumable" if job.video_id is not None else "nothing was stored yet"
            _set(connection, job_id, status="cancelled", phase="ended",
                 message=f"cancelled; {kept} (resume the job to continue)")
        if job.status == "running" and job.pid is not None:
            self._stop(job.pid)
        return self.get(job_id)

    def resume(self, job_id: int) -> Job:
        """Queue an interrupted, cancelled or failed job again; its ingest continues after the store's last
        committed chunk of that video, so no frame is stored twice."""
        with self._connection() as connection, _immediate(connection):
            job = _read(connection, job_id)
            if job.status not in RESUMABLE:
                raise JobStateError(f"ingest job {job_id} is {job.status}; only {', '.join(RESUMABLE)} jobs resume")
            if not Path(job.video_path).is_file():
                raise JobStateError(f"ingest job {job_id}'s video file is gone (removed when the job failed, or "
                                    "purged with its video); upload the video again")
            _set(connection, job_id, status="queued", phase="queued", message="", pid=None)
        return self.get(job_id)

    def recover(self) -> builtins.list[Job]:
        """On server start: mark ``running`` jobs whose process is gone ``interrupted`` (returned; ``resume`` them
        to continue) and start the next queued job."""
        return self.poll()

    def poll(self) -> builtins.list[Job]:
        """Reap finished workers, mark running jobs whose process died ``interrupted`` (returned), and start the
        oldest queued job when none runs. Cheap: reads one table unless something changed."""
        self._children = [child for child in self._children if child.poll() is None]
        interrupted, child = start_next(self.db)
        if child is not None:
            self._children.append(child)
        return [self.get(job_id, refresh=False) for job_id in interrupted]

    def list(self, limit: int = 100) -> builtins.list[Job]:
        """The newest ``limit`` jobs, newest first."""
        self.poll()
        with self._connection() as connection:
            rows = connection.execute(_SELECT + " ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [_job(row) for row in rows]

    def needed_files(self) -> builtins.list[str]:
        """The video files of unfinished jobs, which a sweep of the uploads folder must keep."""
        with self._connection() as connection:
            marks = ", ".join("?" * len(UNFINISHED))
            rows = connection.execute(f"SELECT video_path FROM jobs WHERE status IN ({marks})", UNFINISHED)
            return [str(path) for (path,) in rows]

    # --- helpers ----------------------------------------------------------------------------------------------
    def _refuse_duplicate(self, path: Path) -> None:
        """Refuse an upload whose content digest (in its name) an unfinished job's upload has: that job would ingest
        the same frames, and the second job could only fail in its worker."""
        digest = digest_of(path)
        if digest is None:
            return
        with self._connection() as connection:
            marks = ", ".join("?" * len(UNFINISHED))
            rows = connection.execute(f"SELECT id, status, video_path FROM jobs WHERE status IN ({marks}) ORDER BY id",
                                      UNFINISHED).fetchall()
        for job_id, status, other in rows:
            if digest_of(other) == digest and Path(other) != path and Path(other).is_file():
                raise DuplicateUploadError(f"this video was uploaded already for ingest job {job_id} ({status}); "
                                           f"{'wait for' if status in ACTIVE else 'resume'} that job instead")

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with closing(connect_new(self.db)) as connection:
            yield connection

    def _stop(self, pid: int) -> None:
        """Terminate the worker's process group and wait until the worker is gone (it holds the store's lock)."""
        for sig, wait_s in ((signal.SIGTERM, _STOP_WAIT_S), (signal.SIGKILL, _STOP_WAIT_S)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                self._children = [child for child in self._children if child.poll() is None]
                if not worker_alive(pid):
                    return
                time.sleep(0.05)


def ingest_options_of(camera: str, start_time: str | None, options: JobOptions) -> IngestOptions:
    """The ``IngestOptions`` of a job (no progress bar: nobody watches a worker's terminal), its refusals worded
    for the API's client: the upload's form fields, and deleting a video where the command line would ``--force``."""
    from reidkit.search.ingest import IngestOptions, IngestWording
    from reidkit.store.rows import parse_time

    return IngestOptions(
        camera=camera.strip(),
        start_time=parse_time(start_time, "start_time") if start_time else None,
        every_n=options.every,
        start_frame=options.start_frame,
        end_frame=options.end_frame,
        chunk_frames=options.chunk_frames,
        progress=False,
        wording=IngestWording(every="every", chunk_frames="chunk_frames", start_frame="start_frame",
                              end_frame="end_frame", camera="camera", rerun="upload it again with",
                              replace="delete that video first to replace it",
                              start_over="delete that video first to start over"),
    )


def start_next(db: Path) -> tuple[builtins.list[int], subprocess.Popen[bytes] | None]:
    """In one write transaction: mark running jobs whose worker is gone ``interrupted``, then, when no job runs,
    start the oldest queued one. Returns the interrupted job ids and the started process (or None)."""
    with closing(connect_new(db)) as connection:
        running = connection.execute("SELECT id, pid FROM jobs WHERE status = 'running'").fetchall()
        if any(worker_alive(pid) for _, pid in running):
            return [], None
        if not running and connection.execute("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1").fetchone() is None:
            return [], None  # the common case: nothing to do, nothing written
        with _immediate(connection):
            running = connection.execute("SELECT id, pid FROM jobs WHERE status = 'running'").fetchall()
            if any(worker_alive(pid) for _, pid in running):
                return [], None
            for job_id, _ in running:
                _set(connection, job_id, status="interrupted", phase="ended", pid=None,
                     message="the ingest process ended without finishing (server restart or crash); resume the job "
                     "to continue after the last committed chunk")
            row = connection.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            child = None if row is None else _spawn(Path(db), connection, int(row[0]))
        return [job_id for job_id, _ in running], child


def _spawn(db: Path, connection: sqlite3.Connection, job_id: int) -> subprocess.Popen[bytes] | None:
    """Start the worker of ``job_id`` in a session of its own (so that cancelling kills exactly its process group)
    and mark the job running; inside the caller's transaction, which the worker's first write waits for."""
    logs = db / LOGS
    try:
        logs.mkdir(exist_ok=True)
        with open(logs / f"job-{job_id}.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", _WORKER_MODULE, str(db.absolute()), str(job_id)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
    except OSError as exc:
        _set(connection, job_id, status="failed", phase="ended", message=f"cannot start the ingest process: {exc}")
        return None
    _set(connection, job_id, status="running", phase="loading", pid=child.pid)
    return child


def worker_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live ingest worker: a process that exited (even an unreaped zombie, whose command line
    is empty) or a reused pid of another program does not count."""
    if pid is None:
        return False
    proc = Path("/proc")
    if proc.is_dir():
        try:
            return _WORKER_MODULE.encode() in (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def set_job(db: Path, job_id: int, only_if_running: bool = True, **fields: Any) -> bool:
    """Update a job's row (the worker's progress and result); with ``only_if_running`` a job cancelled meanwhile is
    left as it is. True if the row changed."""
    with closing(connect_new(db)) as connection:
        return _set(connection, job_id, only_if_running=only_if_running, **fields)


def read_job(db: Path, job_id: int) -> Job:
    with closing(connect_new(db)) as connection:
        return _read(connection, job_id)


_SELECT = (
    "SELECT id, status, phase, video_path, camera, start_time, options, checkpoint, frames_done, frames_total, "
    "video_id, message, pid, created_at, updated_at FROM jobs"
)
_FIELDS = {"status", "phase", "frames_done", "frames_total", "video_id", "message", "pid"}


def _read(connection: sqlite3.Connection, job_id: int) -> Job:
    row = connection.execute(_SELECT + " WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise UnknownJobError(f"no ingest job {job_id}")
    return _job(row)


def _job(row: tuple[Any, ...]) -> Job:
    options = JobOptions(**json.loads(row[6]))
    return Job(*row[:6], options, *row[7:])  # type: ignore[arg-type]


def _set(connection: sqlite3.Connection, job_id: int, only_if_running: bool = False, **fields: Any) -> bool:
    unknown = set(fields) - _FIELDS
    assert not unknown, f"not a job field: {unknown}"
    assignments = ", ".join(f"{name} = ?" for name in fields)
    where = " AND status = 'running'" if only_if_running else ""
    cursor = connection.execute(
        f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?{where}", (*fields.values(), _now(), job_id)
    )
    return cursor.rowcount > 0


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
