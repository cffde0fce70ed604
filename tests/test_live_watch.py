"""``reidkit watch`` / ``live.watcher.watch_cameras`` against a real RTSP server on loopback serving the shared
video: a stream ingested live and searchable while it grows; the server killed and restarted (reconnect, the gap
recorded, nothing else lost); ``kill -9`` of the command and a restart without duplicates; retention; bad input."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, cut_clip  # tests/ is on sys.path (rootdir conftest)
from live_rtsp import RtspServer, rtsp_server_fixture, wait_for  # noqa: F401 - the rtsp_server fixture
from reidkit.live.camera_db import ensure_camera_tables, gaps, read_health
from reidkit.live.events import TrackUpdate
from reidkit.live.live_db import open_live_db, snapshot_path
from reidkit.live.sources import CameraSource
from reidkit.live.watcher import WatchModels, WatchOptions, WatchReport, watch_cameras
from reidkit.search.retention import PurgeReport
from reidkit.store.layout import DB_NAME
from reidkit.store.reader import StoreReader

pytestmark = pytest.mark.slow
FAST = dict(every_n=2, commit_seconds=1.0, queue_seconds=30.0, backoff_initial_s=0.3, backoff_max_s=1.0, snapshot_every_s=0.5,
            health_every_s=0.3)


@pytest.fixture(scope="module")
def models(shared_dir: Path) -> WatchModels:
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector

    xml = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    choice = choose_model("imagenet", None)
    return WatchModels(choose_detector(None, openvino_model=xml), choice.extractor, choice.source)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> Path:
    """The shared video's first 100 frames (10 s at 10 fps): people walk in and out."""
    return cut_clip(vtest_video, tmp_path_factory.mktemp("clips") / "clip100.mp4", 0, 100)


class Collect:
    """A ``TrackListener`` that keeps what it is told."""

    def __init__(self) -> None:
        self.updates: list[TrackUpdate] = []

    def on_tracks(self, updates: list[TrackUpdate]) -> None:
        self.updates += updates


class Watching:
    """``watch_cameras`` in a thread, as another helper or the service runs it."""

    def __init__(self, db: Path, cameras: Sequence[CameraSource], models: WatchModels, **options: object) -> None:
        self.stop, self.listener = threading.Event(), Collect()
        self.report: WatchReport | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(db, cameras, models, options), daemon=True)
        self.thread.start()

    def _run(self, db: Path, cameras: Sequence[CameraSource], models: WatchModels, options: dict) -> None:
        try:
            self.report = watch_cameras(db, cameras, WatchOptions(**{**FAST, **options}), [self.listener],
                                        self.stop, models=models)
        except BaseException as exc:
            self.error = exc
            raise

    def finish(self) -> WatchReport:
        self.stop.set()
        self.thread.join(timeout=60)
        if self.error is not None:
            raise self.error
        assert self.report is not None
        return self.report


def committed(db: Path) -> list[tuple[int, int, str]]:
    """``(video id, last committed frame, status)`` of every video, read as any other process would."""
    if not (db / DB_NAME).exists():
        return []
    with sqlite3.connect(f"file:{db / DB_NAME}?mode=ro", uri=True, timeout=5) as connection:
        try:
            return connection.execute("SELECT id, last_committed_frame, status FROM videos ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the watcher has made the file but not yet its tables
            return []


def test_stream_ingested_live_and_searchable_while_it_grows(tmp_path: Path, clip: Path, models: WatchModels,
                                                            rtsp_server: Callable[[Path], RtspServer]) -> None:
    from reidkit.search.search import search_store

    server = rtsp_server(clip)
    db = tmp_path / "store"
    started = time.time()
    watching = Watching(db, [CameraSource("door", server.url.replace("//", "//viewer:secret@", 1))], models)
    wait_for(lambda: any(last >= 20 for _, last, _ in committed(db)), 60, "the first commits")
    (video_id, last_while_live, status), = committed(db)
    assert status == "ingesting"  # still growing, and already searchable from another reader:
    with StoreReader.open(db) as reader:
        row = reader.db.execute("SELECT track_id, feature FROM detections ORDER BY quality DESC LIMIT 1").fetchone()
        assert row is not None
        result = search_store(reader, np.frombuffer(row[1], dtype=np.float32), top_k=5)
        assert result.hits and result.hits[0].track.id == row[0]
    wait_for(lambda: watching.listener.updates and any(status == "done" for *_, status in committed(db)), 60,
             "the stream's end")
    report = watching.finish()
    door = report.cameras[0]
    assert door.source == server.url  # credentials are neither stored nor reported
    with StoreReader.open(db) as reader:
        video = reader.video(video_id)
        assert video.path == server.url and video.status == "done" and video.camera == "door"
        assert video.last_committed_frame > last_while_live >= 20
        assert abs(video.start_time.timestamp() - started) < 30
    update = watching.listener.updates[-1]
    assert update.camera == "door" and update.video_id == video_id and update.num_crops >= 1
    assert started <= update.first_frame_received <= update.first_epoch + 5 and update.first_epoch <= update.last_epoch
    assert update.vector.dtype == np.float32 and abs(float(np.linalg.norm(update.vector)) - 1) < 1e-4
    assert snapshot_path(db, "door").read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    health = {h.camera: h for h in read_health(open_live_db(db))}["door"]
    assert health.source == server.url and health.frames_read >= 40 and health.frames_dropped == 0


def test_server_killed_mid_stream_reconnects_and_records_the_gap(
    tmp_path: Path, vtest_video: Path, models: WatchModels, rtsp_server: Callable[[Path], RtspServer]
) -> None:
    # 30 s of stream: still running when it is killed, however far a loaded machine lets the ingest fall behind.
    server = rtsp_server(cut_clip(vtest_video, tmp_path / "clip300.mp4", 0, 300))
    db = tmp_path / "store"
    watching = Watching(db, [CameraSource("door", server.url)], models)
    wait_for(lambda: any(last >= 30 for _, last, _ in committed(db)), 60, "frames before the kill")
    server.kill()
    killed_at = time.time()
    time.sleep(2.0)
    server.start()  # same port; the watcher reconnects by itself
    wait_for(lambda: len(committed(db)) >= 2 and committed(db)[1][1] >= 10, 60, "frames after the restart")
    report = watching.finish()
    first, second = committed(db)[:2]
    assert first[2] == "done" and report.cameras[0].reconnects >= 1
    with StoreReader.open(db) as reader:
        before, after = reader.video(first[0]), reader.video(second[0])
    # Nothing but the gap is lost: the first session is committed up to the frames sent before the kill.
    sent_before_kill = (killed_at - before.start_time.timestamp()) * before.fps
    assert before.last_committed_frame + 1 >= sent_before_kill - 10
    (gap,) = gaps(open_live_db(db), "door")
    assert gap.video_before == first[0] and gap.video_after == second[0]
    assert gap.start_epoch <= killed_at + 1 and gap.end_epoch >= killed_at + 2
    assert abs(gap.end_epoch - after.start_time.timestamp()) < 0.01
    assert report.cameras[0].frames_dropped == 0


def test_retention_purges_old_footage_and_spares_the_live(tmp_path: Path, small_store: Path, clip: Path,
                                                          models: WatchModels) -> None:
    import shutil

    db = tmp_path / "store"
    shutil.copytree(small_store, db)  # footage of 2024: far older than a day
    (old,) = committed(db)
    purges: list[PurgeReport] = []
    watching = Watching(db, [CameraSource("door", str(clip))], models, keep_seconds=86400.0, on_purge=purges.append)
    wait_for(lambda: [video for video, *_ in committed(db)] == [old[0] + 1], 60, "the purge and the new footage")
    report = watching.finish()
    assert report.purged_videos == 1 and [v.id for purge in purges for v in purge.videos] == [old[0]]
    (new,) = committed(db)
    assert new[0] != old[0] and new[1] >= 0
    with StoreReader.open(db) as reader:
        assert reader.db.execute("SELECT COUNT(*) FROM detections WHERE video_id = ?", (old[0],)).fetchone()[0] == 0
        assert not reader.crop_folder(old[0]).exists()


def reidkit(*args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "reidkit", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--camera", "door"], "--camera 'door' must be NAME=URL"),
        (["--camera", "front door=rtsp://127.0.0.1/x"], "--camera: camera name 'front door'"),
        (["--camera", "door=ftp://user:pw@127.0.0.1/x"], "--camera: 'ftp://127.0.0.1/x' is not a stream URL"),
        (["--camera", "door=/no/such/video.mp4"], "--camera: '/no/such/video.mp4' is neither"),
        (["--camera", "a=rtsp://h/x", "--camera", "a=rtsp://h/y"], "--camera: give each camera once"),
        (["--camera", "a=rtsp://h/x", "--keep", "7 days"], "--keep '7 days' must be a positive duration"),
        (["--camera", "a=rtsp://h/x y"], "--camera: 'rtsp://h/x y' holds a control character (or a URL a space)"),
        (["--camera", "a=rtsp://h/x", "--every", "0"], "--every must be a positive integer"),
    ],
)
def test_bad_watch_options_say_one_line_naming_the_flag(tmp_path: Path, arguments: list[str], says: str) -> None:
    process = reidkit("watch", "--db", tmp_path / "store", *arguments)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert says in line and "pw" not in line


def test_kill_9_then_restart_goes_on_without_duplicates(tmp_path: Path, clip: Path,
                                                        rtsp_server: Callable[[Path], RtspServer]) -> None:
    server = rtsp_server(clip)
    db = tmp_path / "store"
    command = ("watch", "--db", db, "--camera", f"file={clip}", "--camera", f"door={server.url}", "--every", "2",
               "--commit-seconds", "1", "--checkpoint", "imagenet", "--quiet")
    first = reidkit(*command)
    wait_for(lambda: any(last >= 30 for _, last, _ in committed(db)), 120, "commits of the first run")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = {video: last for video, last, _ in committed(db)}
    second = reidkit(*command)
    wait_for(lambda: any(last >= 99 - 1 for _, last, _ in committed(db)), 120, "the file's end")
    time.sleep(1.5)
    second.send_signal(signal.SIGTERM)  # a clean stop: commit, finish the rows
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "resumed after frame" in out
    with StoreReader.open(db) as reader:
        assert reader.integrity_problems() == []
        videos = {video.id: video for video in reader.videos()}
        files = [v for v in videos.values() if v.camera == "file"]
        doors = [v for v in videos.values() if v.camera == "door"]
        assert len(files) == 1 and files[0].status == "done"  # the file resumed in its own row
        assert len(doors) >= 2 and all(v.status == "done" for v in doors)  # a stream starts a new session
        assert all(videos[v].last_committed_frame >= before[v] for v in before)  # committed rows stay
        duplicates = reader.db.execute(
            "SELECT COUNT(*) FROM (SELECT video_id, frame_index, x0, y0 FROM detections "
            "GROUP BY video_id, frame_index, x0, y0 HAVING COUNT(*) > 1)").fetchone()[0]
        assert duplicates == 0
        frames = [row[0] for row in reader.db.execute(
            "SELECT DISTINCT frame_index FROM detections WHERE video_id = ? ORDER BY 1", (files[0].id,))]
        assert frames[-1] >= 90 and all(f % 2 == 0 for f in frames)
    (gap,) = [g for g in gaps(open_live_db(db), "door") if "killed" in g.reason]
    assert gap.end_epoch is not None and gap.end_epoch > gap.start_epoch
    # the people linked online went on after the restart: every track of the last stream session has a person
    with StoreReader.open(db) as reader:
        last_tracks = {row[0] for row in reader.db.execute("SELECT id FROM tracks WHERE video_id = ?", (doors[-1].id,))}
    linked = {row[0] for row in open_live_db(db).execute("SELECT track_id FROM live_track_people")}
    assert last_tracks and last_tracks <= linked


def test_an_unreachable_camera_says_why_without_its_password(tmp_path: Path, models: WatchModels) -> None:
    from live_rtsp import free_port

    db = tmp_path / "store"
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam"  # nobody listens there
    watching = Watching(db, [CameraSource("door", url)], models)

    def said() -> bool:
        if not db.is_dir():
            return False
        live = open_live_db(db)
        ensure_camera_tables(live)  # (IF NOT EXISTS: the watcher may not have made them yet)
        healths = read_health(live)
        return bool(healths) and healths[0].error is not None
    wait_for(said, 30, "the failed connection in the health row")
    report = watching.finish()
    (health,) = read_health(open_live_db(db))
    assert health.source == url.replace("admin:hunter2@", "") and health.state == "stopped"
    assert "hunter2" not in (health.error or "") and health.reconnects == 0 and report.cameras[0].sessions == []
    assert committed(db) == []


def test_a_file_that_is_no_video_fails_its_camera_only(tmp_path: Path, clip: Path, models: WatchModels) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    db = tmp_path / "store"
    report = watch_cameras(db, [CameraSource("junk", str(junk)), CameraSource("door", str(clip), every_n=5)],
                           WatchOptions(**FAST), models=models)
    failed, door = report.cameras
    assert failed.state == "failed" and "junk.mp4" in (failed.note or "") and failed.sessions == []
    assert door.state == "finished" and door.frames == 20 and door.sessions  # every 5th of 100 frames


def test_a_sessions_last_partial_segment_reaches_the_listeners(tmp_path: Path, clip: Path,
                                                               models: WatchModels) -> None:
    """A file shorter than one commit segment is committed only when it ends: its tracks must still reach the
    alerts and the people linker, as every segment's do."""
    db = tmp_path / "store"
    watching = Watching(db, [CameraSource("file", str(clip))], models, commit_seconds=3600.0)
    wait_for(lambda: any(status == "done" for *_, status in committed(db)), 120, "the file's end")
    watching.finish()
    with StoreReader.open(db) as reader:
        stored = set(reader.track_ids().tolist())
    assert stored and {update.track_id for update in watching.listener.updates} == stored
