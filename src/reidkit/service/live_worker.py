"""The process that watches the cameras registered over the API: ``python -m reidkit.service.live_worker DB``.

One process for all cameras (``live.watcher.watch_cameras`` batches their detection and embedding), started by the
service (``ensure_live_worker``) when a camera is registered and no worker runs, in a session of its own like the
ingest jobs (``service.jobs``): it outlives a server restart, and a crash of a camera's decoder cannot take the API
down. It reads the registered cameras, watches them, and every couple of seconds checks whether the list changed:
then it stops cleanly (commit, finish the rows) and starts again with the new list, keeping its loaded models. With
no camera left it exits. SIGTERM stops it cleanly. While an ingest job holds the store's writer lock it waits,
saying so in every camera's health row.

Its pid is kept in ``live.sqlite`` (``live_worker``), claimed in one ``BEGIN IMMEDIATE`` transaction, so two
servers (or two requests) never start two watchers of one store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import closing
from pathlib import Path

from reidkit.errors import StoreBusyError
from reidkit.live.camera_db import CameraHealth, ensure_camera_tables, registered_cameras, write_health
from reidkit.live.live_db import ensure_tables, live_db_path, open_live_db
from reidkit.live.sources import CameraSource
from reidkit.store.layout import DB_NAME

_WORKER_MODULE = "reidkit.service.live_worker"
_LOG = "job-logs/live-worker.log"
_POLL_S = 2.0
_BUSY_RETRY_S = 10.0
_DDL = "CREATE TABLE IF NOT EXISTS live_worker (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL);"


def ensure_live_worker(db: Path, checkpoint: str | None = None) -> int | None:
    """Start the worker when cameras are registered and none runs; its pid (None: no camera, nothing started)."""
    with closing(open_live_db(db)) as live:
        ensure_tables(live, _DDL)
        ensure_camera_tables(live)
        live.execute("BEGIN IMMEDIATE")
        try:
            row = live.execute("SELECT pid FROM live_worker WHERE id = 1").fetchone()
            if row is not None and worker_alive(int(row[0])):
                return int(row[0])
            if not registered_cameras(live):
                return None
            pid = _spawn(Path(db), checkpoint)
            live.execute("INSERT OR REPLACE INTO live_worker(id, pid) VALUES (1, ?)", (pid,))
            return pid
        finally:
            live.execute("COMMIT")


def restart_live_cameras(db: Path, checkpoint: str | None = None) -> None:
    """At server start: the watcher of the registered cameras, when they have none (it died with the machine). A
    store without ``live.sqlite`` never had a camera and is not touched (it may be read-only)."""
    if live_db_path(db).is_file():
        ensure_live_worker(db, checkpoint)


def _spawn(db: Path, checkpoint: str | None) -> int:
    log = db / _LOG
    log.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", _WORKER_MODULE, str(db.absolute())] + ([checkpoint] if checkpoint else [])
    with open(log, "ab") as out:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return child.pid


def worker_alive(pid: int) -> bool:
    """Whether ``pid`` is a live watcher of this kind (a reused pid of another program does not count)."""
    try:
        return _WORKER_MODULE.encode() in (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False


def stop_live_worker(db: Path) -> None:
    """SIGTERM the store's watcher (it stops cleanly); for tests and shutdown scripts."""
    with closing(open_live_db(db)) as live:
        ensure_tables(live, _DDL)
        row = live.execute("SELECT pid FROM live_worker WHERE id = 1").fetchone()
    if row is not None and worker_alive(int(row[0])):
        os.kill(int(row[0]), signal.SIGTERM)


def _sources(db: Path) -> list[CameraSource]:
    with closing(open_live_db(db)) as live:
        ensure_camera_tables(live)
        return [CameraSource(c.name, c.url, c.every_n) for c in registered_cameras(live)]


def run(db: Path, checkpoint: str | None) -> None:
    """Watch the registered cameras until none is left or SIGTERM (see the module docstring)."""
    from reidkit.live.listeners import watch_listeners
    from reidkit.live.watcher import WatchOptions, load_models, watch_cameras
    from reidkit.store.reader import StoreReader

    quit_ = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: quit_.set())
    options = WatchOptions(checkpoint=checkpoint)
    models = None
    while not quit_.is_set():
        cameras = _sources(db)
        if not cameras and _leave_if_no_camera(db):
            return
        if not cameras:
            continue
        if models is None:
            held = None
            if (db / DB_NAME).is_file():
                with StoreReader.open(db) as reader:
                    held = reader.model
            models = load_models(options, held)
        restart = threading.Event()
        poller = threading.Thread(target=_watch_list, args=(db, cameras, restart, quit_), daemon=True)
        poller.start()
        try:
            with watch_listeners(db, models.embedder.model_id) as listeners:  # alerts, people linked online
                watch_cameras(db, cameras, options, stop=restart, models=models, listeners=listeners)
        except StoreBusyError as exc:
            _say_waiting(db, cameras, str(exc))
            quit_.wait(_BUSY_RETRY_S)
            restart.set()
        poller.join()


def _leave_if_no_camera(db: Path) -> bool:
    """Give up the worker's row when no camera is registered, in the transaction ``ensure_live_worker`` claims it
    in: a camera registered meanwhile either sees this worker leave (and starts another) or is seen here (and this
    worker stays). False: a camera came in the meantime."""
    with closing(open_live_db(db)) as live:
        ensure_tables(live, _DDL)
        live.execute("BEGIN IMMEDIATE")
        try:
            if registered_cameras(live):
                return False
            live.execute("DELETE FROM live_worker WHERE id = 1 AND pid = ?", (os.getpid(),))
            return True
        finally:
            live.execute("COMMIT")


def _watch_list(db: Path, cameras: list[CameraSource], restart: threading.Event, quit_: threading.Event) -> None:
    """Set ``restart`` when the registered cameras change or the process is told to quit."""
    while not restart.is_set():
        if quit_.wait(_POLL_S) or _sources(db) != cameras:
            restart.set()


def _say_waiting(db: Path, cameras: list[CameraSource], why: str) -> None:
    with closing(open_live_db(db)) as live:
        for camera in cameras:
            write_health(live, CameraHealth(camera.name, camera.public_url, state="waiting", error=why))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m reidkit.service.live_worker DB [CHECKPOINT]", file=sys.stderr)
        return 2
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} live worker {os.getpid()} started", flush=True)
    try:
        run(Path(args[0]), args[1] if len(args) == 2 else None)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
