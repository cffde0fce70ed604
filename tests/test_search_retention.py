"""Retention on a real store (the shared pedestrian video, four disjoint 20-frame ranges as four videos): a purge
deletes exactly the older videos' rows, crops, vectors and uploaded files, leaves the rest searchable, and a dry run
changes nothing; ``reidkit purge`` refuses bad input in one line."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reidkit.errors import ConfigError, StoreError
from reidkit.search.ingest import IngestOptions, ingest_video
from reidkit.inference.model_choice import choose_model
from reidkit.video.detector_choice import choose_detector
from reidkit.search.retention import UPLOADS, delete_video, purge_before
from reidkit.search.search import search_store, track_query
from reidkit.service import audit
from reidkit.service.service_db import SERVICE_DB
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.layout import DB_NAME
from reidkit.store.vector_index import IndexLocation, load_vector_index
from reidkit.store.writer import Store
from reidkit.video import probe_video

REIDKIT = Path(sys.executable).with_name("reidkit")
DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
MAY = datetime(2024, 5, 1, 9, 0, 0)
JUNE = datetime(2024, 6, 1, 9, 0, 0)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path) -> Path:
    """Videos: 1 (May, shared file), 2 (June), 3 (no start time), 4 (May 2nd, a copy saved in ``uploads/``)."""
    root = tmp_path_factory.mktemp("retention") / "store"
    (root / UPLOADS).mkdir(parents=True)
    upload = root / UPLOADS / "upload.avi"
    shutil.copyfile(vtest_video, upload)
    model = choose_model("imagenet", None)
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    plan = [(vtest_video, MAY, 0), (vtest_video, JUNE, 20), (vtest_video, None, 40), (upload, MAY.replace(day=2), 60)]
    with Store.open(root, writable=True, create=True) as store:
        for number, (video, start, first) in enumerate(plan, start=1):
            options = IngestOptions(f"cam{number}", start, every_n=2, start_frame=first, end_frame=first + 20,
                                    progress=False)
            report = ingest_video(store, probe_video(video), options, model.extractor, detector, model.source)
            assert report.video_id == number and report.detections > 0
    return root


def copy_store(built: Path, tmp_path: Path) -> Path:
    """A copy of the store whose uploaded video's stored (absolute) path points into the copy."""
    root = tmp_path / "store"
    shutil.copytree(built, root)
    with closing(sqlite3.connect(root / DB_NAME)) as connection, connection:
        connection.execute("UPDATE videos SET path = replace(path, ?, ?)", (str(built), str(root)))
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock" and "-wal" not in p.name
            and "-shm" not in p.name}


def test_a_dry_run_lists_the_old_videos_and_changes_nothing(built: Path, tmp_path: Path) -> None:
    root = copy_store(built, tmp_path)
    before = snapshot(root)
    with Store.open(root) as store:  # read-only is enough for a dry run
        report = purge_before(store, datetime(2024, 5, 15), dry_run=True)
    assert [v.id for v in report.videos] == [1, 4]
    assert report.dry_run and report.detections > 0 and not any(v.file_deleted for v in report.videos)
    # committed frames 0-18 at 10 fps: the footage ends 1.9 s after its start time
    ended = report.videos[0].footage_end - MAY.replace(tzinfo=UTC)
    assert abs(ended - timedelta(seconds=1.9)) < timedelta(milliseconds=1)
    assert snapshot(root) == before


def test_a_purge_deletes_exactly_the_older_videos_rows_crops_vectors_and_uploads(built: Path, tmp_path: Path) -> None:
    root = copy_store(built, tmp_path)
    with Store.open(root) as store:
        doomed_tracks = {t for v in (1, 4) for t in store.ids_of("SELECT id FROM tracks WHERE video_id = ?", (v,))}
        doomed_crops = set(store.ids_of("SELECT id FROM detections WHERE video_id IN (1, 4)", ()).tolist())
        queries = [track_query(store, track) for track in sorted(doomed_tracks)]
        kept = store.summary()
        kept_crops = kept.detections - len(doomed_crops)

    with Store.open(root, writable=True) as store:
        report = purge_before(store, datetime(2024, 5, 15, tzinfo=UTC))
        assert [(v.id, v.camera, v.dated_by) for v in report.videos] == [(1, "cam1", "start time"),
                                                                        (4, "cam4", "start time")]
        assert [v.file_deleted for v in report.videos] == [False, True]
        assert report.detections == len(doomed_crops) and report.tracks == len(doomed_tracks)
        assert [v.id for v in store.videos()] == [2, 3] and store.cameras() == ["cam2", "cam3"]
        assert store.integrity_problems() == []

    assert not (root / "crops" / "v000001").exists() and not (root / "crops" / "v000004").exists()
    assert (root / "crops" / "v000002").is_dir()
    assert not (root / UPLOADS / "upload.avi").exists()
    # the saved FAISS files (not only the open store's memory) hold no deleted vector
    dim = queries[0].shape[0]
    with Store.open(root) as store:
        seq = store.commit_seq
    for name, doomed, count in ((CROP_INDEX, doomed_crops, kept_crops), (TRACK_INDEX, doomed_tracks, None)):
        saved = load_vector_index(IndexLocation("faiss", root / "vectors"), name, dim)
        assert saved is not None and saved.commit_seq == seq
        assert not doomed & set(saved.ids().tolist())
        assert count is None or saved.count == count
    with Store.open(root) as store:
        for query in queries:
            hits = search_store(store, query, top_k=50).hits
            assert hits and {hit.track.video_id for hit in hits} <= {2, 3}
        june_track = int(store.ids_of("SELECT id FROM tracks WHERE video_id = 2 LIMIT 1", ())[0])
        assert search_store(store, track_query(store, june_track), top_k=1).hits[0].track.id == june_track


def test_a_video_without_start_time_is_dated_by_its_ingest(built: Path, tmp_path: Path) -> None:
    root = copy_store(built, tmp_path)
    with Store.open(root, writable=True) as store:
        assert [v.id for v in purge_before(store, datetime(2025, 1, 1)).videos] == [1, 2, 4]
        time.sleep(1.1)  # created_at has whole seconds
        report = purge_before(store, datetime.now(UTC))
        assert [(v.id, v.dated_by) for v in report.videos] == [(3, "ingest time")]
        assert store.summary().detections == 0 and store.index(CROP_INDEX).count == 0
        with pytest.raises(ConfigError, match="in the future"):
            purge_before(store, datetime.now(UTC) + timedelta(days=1))


def test_delete_video_removes_one_video(built: Path, tmp_path: Path) -> None:
    root = copy_store(built, tmp_path)
    with Store.open(root, writable=True) as store:
        tracks = set(store.ids_of("SELECT id FROM tracks WHERE video_id = 2", ()).tolist())
        deleted = delete_video(store, 2)
        assert (deleted.id, deleted.camera, deleted.tracks) == (2, "cam2", len(tracks)) and deleted.detections > 0
        assert [v.id for v in store.videos()] == [1, 3, 4]
        with pytest.raises(StoreError, match="no video 2"):
            delete_video(store, 2)
    with Store.open(root) as store:  # reopened: what was saved
        assert tracks and not tracks & set(store.index(TRACK_INDEX).ids().tolist())
        assert store.integrity_problems() == []


def purge_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), "purge", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_purge_command(built: Path, tmp_path: Path) -> None:
    root = copy_store(built, tmp_path)
    before = snapshot(root)
    dry = purge_cli("--db", root, "--before", "2024-05-15", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete video 1 (camera 'cam1'" in dry.stdout and "would delete video 4" in dry.stdout
    assert "would delete 2 videos" in dry.stdout and "nothing changed" in dry.stdout
    audit_log = root / SERVICE_DB  # the dry run is audited; the store itself is untouched
    assert {name: digest for name, digest in snapshot(root).items() if name != SERVICE_DB} == before
    done = purge_cli("--db", root, "--before", "2024-05-15T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "deleted 2 videos" in done.stdout and "uploaded file deleted" in done.stdout
    assert "[store now: 2 videos" in done.stdout
    assert [(e.action, e.who) for e in audit.read(audit_log.parent)] == [("purge", "cli"), ("purge.dry_run", "cli")]
    for args, named in (
        (("--db", root, "--before", "last tuesday"), "--before 'last tuesday' is not an ISO 8601 time"),
        (("--db", root, "--before", "2999-01-01"), "is in the future"),
        (("--db", tmp_path / "missing", "--before", "2024-01-01"), "does not exist"),
    ):
        failed = purge_cli(*args)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], failed.stderr
    assert not (tmp_path / "missing").exists()
