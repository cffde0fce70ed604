"""Search over a real ingest: the first 60 frames of the shared pedestrian video, every 2nd frame, OpenVINO
detector (HOG without it), MGN-MobileNetV2 with ImageNet weights (plumbing, not accuracy)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Generator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import ConfigError, ImageError, StoreError
from reidkit.search.ingest import IngestOptions, ingest_video, plan_ingest
from reidkit.inference.model_choice import ModelChoice, choose_model
from reidkit.video.detector_choice import choose_detector
from reidkit.search.query import load_query_image, query_crop
from reidkit.search.search import SearchFilters, search_store, track_query
from reidkit.store.backend_move import move_store
from reidkit.store.rows import normalise_rows
from reidkit.store.writer import Store
from reidkit.video import Detector, iter_frames, probe_video
from reidkit.viz.search_page import write_search_page

START = datetime(2024, 5, 1, 9, 0, 0)
DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model() -> ModelChoice:
    return choose_model("imagenet", None)


@pytest.fixture(scope="module")
def store_root(
    tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path, model: ModelChoice
) -> Path:
    """Ingested with the CLI's default embedding backend (OpenVINO where installed), searched with PyTorch queries:
    the tests below also show that the two backends' features mix."""
    root = tmp_path_factory.mktemp("store")
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    options = IngestOptions("cam1", START, every_n=2, end_frame=60, progress=False)
    ingest_model = choose_model("imagenet", None, backend="auto")
    assert ingest_model.extractor.model_id == model.extractor.model_id
    with Store.open(root, writable=True, create=True) as store:
        report = ingest_video(store, probe_video(vtest_video), options, ingest_model.extractor, detector, model.source)
    assert report.frames == 30 and report.detections > 30 and report.tracks >= 3
    assert set(report.stage_seconds) == {"decode", "detect", "track", "embed", "write"}
    assert all(seconds > 0 for seconds in report.stage_seconds.values())
    return root


class _FailingDetector:
    """The real detector, failing on its ``fail_on``-th batch, as a crashed inference device would."""

    def __init__(self, detector: Detector, fail_on: int) -> None:
        self.detector, self.fail_on, self.calls = detector, fail_on, 0
        self.name = detector.name

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        return self.detector.detect(image_rgb)

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("inference device lost")
        return self.detector.detect_batch(images_rgb)


def test_a_detector_failure_surfaces_and_the_rerun_resumes(
    vtest_video: Path, shared_dir: Path, model: ModelChoice, tmp_path: Path
) -> None:
    """Detection runs in a background thread: its error must reach the caller, after the chunks before it committed."""
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    options = IngestOptions("c", every_n=2, end_frame=40, chunk_frames=5, progress=False)
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        with pytest.raises(RuntimeError, match="inference device lost"):
            failing = _FailingDetector(detector, 3)
            ingest_video(store, probe_video(vtest_video), options, model.extractor, failing, "imagenet")
        interrupted = store.video(1)
        assert interrupted.status == "ingesting" and interrupted.last_committed_frame == 18  # two chunks of 5
        assert store.integrity_problems() == []
        report = ingest_video(store, probe_video(vtest_video), options, model.extractor, detector, "imagenet")
        assert report.resumed_after == 18 and report.frames == 10
        assert store.video(1).status == "done" and store.integrity_problems() == []


def _embed(model: ModelChoice, image: np.ndarray) -> np.ndarray:
    return normalise_rows(model.extractor([image]))[0]


def _a_mid_track_crop(store: Store) -> tuple[int, int]:
    """(detection id, track id) from the middle of the longest track."""
    (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
    rows = store.track_detections(track_id)
    return rows[len(rows) // 2].id, track_id


def test_the_ingest_is_consistent(store_root: Path) -> None:
    with Store.open(store_root) as store:
        assert store.integrity_problems() == []
        assert store.video(1).status == "done" and store.video(1).last_committed_frame == 58


def test_search_by_crop_finds_its_own_track_first(store_root: Path, model: ModelChoice) -> None:
    with Store.open(store_root) as store:
        detection_id, track_id = _a_mid_track_crop(store)
        row = store.detections([detection_id])[detection_id]
        result = search_store(store, _embed(model, load_query_image(store_root / row.crop_path)), top_k=5)
    top = result.hits[0]
    assert top.track.id == track_id and top.best.id == detection_id
    assert top.score > 0.9  # the same crop, through a JPEG round trip
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert len({h.track.id for h in result.hits}) == len(result.hits)  # grouped: one hit per track
    assert top.best.wall_time == START + timedelta(seconds=top.best.time_s)


def test_search_by_frame_and_box(store_root: Path, model: ModelChoice, vtest_video: Path) -> None:
    with Store.open(store_root) as store:
        detection_id, track_id = _a_mid_track_crop(store)
        row = store.detections([detection_id])[detection_id]
        frame = next(iter_frames(vtest_video, 1, row.frame_index, row.frame_index + 1, progress=False))
        crop = query_crop(frame.image, "frame", row.box, detector=lambda: pytest.fail("no detector with --box"))
        assert crop.kind == "frame+box"
        result = search_store(store, _embed(model, crop.image), top_k=3)
    assert result.hits[0].track.id == track_id
    assert result.hits[0].best.id == detection_id


def test_a_whole_frame_needs_exactly_one_person(vtest_video: Path, shared_dir: Path) -> None:
    frame = next(iter_frames(vtest_video, 1, 30, 31, progress=False)).image
    detector = lambda: choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)  # noqa: E731
    with pytest.raises(ImageError, match=r"people found in frame30; pick one with --box x0,y0,x1,y1 \(detected: "):
        query_crop(frame, "frame30", None, detector)
    empty = np.full((240, 320, 3), 127, dtype=np.uint8)
    with pytest.raises(ImageError, match="no person found in blank.png .* --box"):
        query_crop(empty, "blank.png", None, detector)


def test_search_by_track_leaves_the_track_itself_out(store_root: Path) -> None:
    with Store.open(store_root) as store:
        _, track_id = _a_mid_track_crop(store)
        result = search_store(store, track_query(store, track_id), top_k=10, exclude_track=track_id)
        with pytest.raises(StoreError, match="has no track 99999"):
            track_query(store, 99999)
    assert result.hits and track_id not in {h.track.id for h in result.hits}
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_filters_by_camera_and_time(store_root: Path, backend: str, tmp_path: Path) -> None:
    if backend == "milvus":  # the same ingest, moved to an embedded Milvus database (filters pushed down there)
        store_root = shutil.copytree(store_root, tmp_path / "store")
        with Store.open(store_root, writable=True) as store:
            move_store(store, "milvus")
    with Store.open(store_root) as store:
        assert store.location.backend == backend
        query = track_query(store, 1)
        with pytest.raises(ConfigError, match="--camera 'elsewhere': no such camera .* its cameras are 'cam1'"):
            search_store(store, query, filters=SearchFilters(cameras=("elsewhere",)))
        assert search_store(store, query, filters=SearchFilters(cameras=("cam1",))).hits
        early = search_store(store, query, filters=SearchFilters(before=START - timedelta(seconds=1)))
        assert early.hits == [] and early.notes == []
        after = START + timedelta(seconds=3)
        late = search_store(store, query, filters=SearchFilters(after=after))
    assert late.hits and all(h.best.wall_time is not None and h.best.wall_time >= after for h in late.hits)


def test_rerank_reorders_by_k_reciprocal_distance(store_root: Path) -> None:
    with Store.open(store_root) as store:
        result = search_store(store, track_query(store, 1), top_k=5, rerank=True)
    distances = [h.rerank_distance for h in result.hits]
    assert result.reranked and None not in distances
    assert distances == sorted(distances)  # type: ignore[type-var]


def test_a_truncated_video_is_ingested_up_to_the_damage(
    vtest_video: Path, shared_dir: Path, model: ModelChoice, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.avi"
    cut.write_bytes(vtest_video.read_bytes()[:300_000])  # a copy cut off after about 30 of its 795 frames
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        options = IngestOptions("c", every_n=5, progress=False)
        report = ingest_video(store, probe_video(cut), options, model.extractor, detector, model.source)
        assert any("cut.avi" in w and "truncated" in w for w in report.warnings)
        video_row = store.video(report.video_id)
        assert video_row.status == "done" and 0 < video_row.last_committed_frame < 60
        assert report.detections > 0 and store.integrity_problems() == []


def test_a_recording_that_grew_is_resumed_not_stored_twice(
    vtest_video: Path, shared_dir: Path, model: ModelChoice, tmp_path: Path
) -> None:
    """A copy taken while the file was still being written, then the finished file: one video, no frame twice."""
    data = vtest_video.read_bytes()
    early, grown, longer = tmp_path / "early.avi", tmp_path / "grown.avi", tmp_path / "longer.avi"
    for path, size in ((early, 200_000), (grown, 400_000), (longer, 450_000)):
        path.write_bytes(data[:size])
    detector = choose_detector(None, openvino_model=shared_dir / DETECTOR_MODEL)
    options = IngestOptions("c", every_n=1, progress=False)
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        first = ingest_video(store, probe_video(early), options, model.extractor, detector, model.source)
        stopped = store.video(first.video_id).last_committed_frame
        second = ingest_video(store, probe_video(grown), options, model.extractor, detector, model.source)
        assert (second.video_id, second.resumed_after, second.grown_from) == (first.video_id, stopped, str(early))
        video = store.video(first.video_id)
        assert [v.id for v in store.videos()] == [video.id] and video.path == str(grown)
        assert video.status == "done" and video.last_committed_frame > stopped + 5
        assert store.integrity_problems() == []
        frames = [row[0] for row in store.db.execute("SELECT frame_index FROM detections GROUP BY frame_index")]
        assert frames == sorted(set(frames)) and frames[-1] > stopped
        twice = store.db.execute(
            "SELECT COUNT(*) FROM (SELECT frame_index, x0, y0 FROM detections GROUP BY 1, 2, 3 HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert twice == 0
        # the shorter copy again is already stored; a longer one under another camera is refused with the way out
        with pytest.raises(StoreError, match=r"the frames of .*early.avi are already in store .* as video 1"):
            plan_ingest(store, probe_video(early), options)
        with pytest.raises(StoreError, match=r"longer.avi continues the recording ingested as video 1 .* --camera c "):
            plan_ingest(store, probe_video(longer), replace(options, camera="d"))
        assert [v.id for v in plan_ingest(store, probe_video(early), replace(options, force=True)).replace] == [1]


def test_trajectory_and_self_contained_html(store_root: Path, model: ModelChoice, tmp_path: Path) -> None:
    with Store.open(store_root) as store:
        result = search_store(store, track_query(store, 1), top_k=4)
        page = write_search_page(tmp_path / "page.html", result, store.root, np.zeros((64, 32, 3), np.uint8), "q")
    visits = result.trajectory
    assert sum(v.sightings for v in visits) == len(result.hits)
    assert sum(v.crops for v in visits) == sum(h.track.num_crops for h in result.hits)
    assert [v.first_seen for v in visits] == sorted(v.first_seen for v in visits if v.first_seen)
    text = page.read_text()
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == len(result.hits) + 1  # the query and one crop per hit
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text
    assert "<svg" in text and "first seen" in text


def test_the_background_producer_stops_when_ingest_fails_midway() -> None:
    """The consumer fails after the producer has queued its last item: leaving must not wait on it forever."""
    from reidkit.search.ingest import _in_background

    closed = threading.Event()

    def items() -> Generator[int, None, None]:
        try:
            yield from range(2)
        finally:
            closed.set()

    def consume() -> None:
        with pytest.raises(RuntimeError, match="commit failed"):
            for _ in _in_background(items()):
                time.sleep(0.3)  # the producer queues item 1 and reaches its end meanwhile
                raise RuntimeError("commit failed")

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=10)
    assert not consumer.is_alive(), "leaving the ingest loop hung on the background producer"
    assert closed.is_set()
