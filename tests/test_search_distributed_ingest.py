"""Distributed ingest on a real local Ray: two 20-frame clips of the shared pedestrian video (every 2nd frame),
OpenVINO detector, a small MGN-MobileNetV2 from scratch (64x32 input) saved as a checkpoint, PyTorch embedding.

The store a distributed run builds is compared with a single-process ``ingest_video`` of the same clips; a worker is
killed for real (``os._exit`` mid-segment) and its segment must be redone, never stored twice."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import cut_clip, scratch_mgn  # tests/ is on sys.path (rootdir conftest)

from reidkit.errors import StoreError
from reidkit.models.model_file import model_payload, save_checkpoint
from reidkit.search.distributed_ingest import RayClusterOptions, RayWorkers, VideoJob, WorkerSetup, ingest_many
from reidkit.search.ingest import IngestOptions, begin_ingest, ingest_video, next_frame
from reidkit.inference.model_choice import choose_model
from reidkit.video.detector_choice import choose_detector
from reidkit.search.segments import commit_segment, plan_segments, process_segment
from reidkit.store.rows import ModelInfo, VideoRecord
from reidkit.store.writer import Store
from reidkit.video import Detector, probe_video

DETECTOR_MODEL = Path("models") / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
CLIP_FRAMES = 20
EVERY = 2
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [cut_clip(vtest_video, folder / f"{name}.mp4", start, CLIP_FRAMES) for name, start in (("a", 0), ("b", 200))]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> WorkerSetup:
    model, card = scratch_mgn(4)
    checkpoint = tmp_path_factory.mktemp("model") / "small.pt"
    save_checkpoint(checkpoint, model_payload(model, card))
    return WorkerSetup(str(checkpoint), "openvino", str(shared_dir / DETECTOR_MODEL), backend="torch")


@pytest.fixture(scope="module")
def models(setup: WorkerSetup):
    """The same detector and extractor as the workers build, in this process."""
    detector = choose_detector(setup.detector, openvino_model=Path(str(setup.detector_model)))
    return choose_model(setup.model_source, None, backend=setup.backend).extractor, detector


def options(camera: str, **changes: object) -> IngestOptions:
    return replace(IngestOptions(camera, every_n=EVERY, chunk_frames=4, progress=False), **changes)


def jobs(clips: list[Path]) -> list[VideoJob]:
    return [VideoJob(probe_video(clip), options(clip.stem)) for clip in clips]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, clips: list[Path], setup: WorkerSetup, models) -> Path:
    """The single-process ingest of both clips, as ``reidkit ingest`` runs it."""
    extractor, detector = models
    root = tmp_path_factory.mktemp("reference") / "store"
    with Store.open(root, writable=True, create=True) as store:
        for job in jobs(clips):
            report = ingest_video(store, job.info, job.options, extractor, detector, setup.model_source)
            assert report.detections > 20 and report.tracks >= 2
    return root


@pytest.fixture(scope="module")
def workers(setup: WorkerSetup):
    """Two workers on a local Ray of 2 CPUs, started once for the module; closing them shuts Ray down."""
    pytest.importorskip("ray")
    with RayWorkers(setup, RayClusterOptions(workers=2, max_retries=2)) as started:
        yield started


def detections_of(store: Store, video_id: int) -> tuple[list[tuple[int, tuple[float, ...]]], np.ndarray]:
    """``([(frame, box), ...], features)`` of a video's stored crops in frame order."""
    rows = list(store.db.execute(
        "SELECT frame_index, x0, y0, x1, y1, feature FROM detections WHERE video_id = ? ORDER BY frame_index, x0, y0",
        (video_id,),
    ))
    keys = [(int(row[0]), tuple(round(float(v), 3) for v in row[1:5])) for row in rows]
    return keys, np.vstack([np.frombuffer(row[5], dtype=np.float32) for row in rows])


def test_segments_cut_the_frame_grid_without_gaps_or_overlaps() -> None:
    video = VideoRecord(7, "c", "v.mp4", "f", 3, 100, 4, "hog", None, 10.0, 64, 48, "ingesting", -1)
    segments = plan_segments(video, 3, 25)
    assert [s.index for s in segments] == list(range(len(segments)))
    assert segments[0].start_frame == 3 and segments[-1].end_frame == 100
    assert all(a.end_frame == b.start_frame for a, b in zip(segments, segments[1:]))
    assert all((s.start_frame - 3) % 4 == 0 and s.end_frame - s.start_frame <= 24 for s in segments)
    assert len(plan_segments(video, 3, None)) == 1 and plan_segments(video, 100, 25) == []
    open_ended = replace(video, end_frame=2**62)
    assert len(plan_segments(open_ended, 3, 25)) == 1  # an unknown length cannot be cut


def test_a_segment_committed_twice_is_stored_once(clips: list[Path], setup: WorkerSetup, models, tmp_path: Path) -> None:
    extractor, detector = models
    job = jobs(clips)[0]
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        model = ModelInfo(extractor.model_id, extractor.feature_dim, setup.model_source)
        video, _ = begin_ingest(store, job.info, job.options, model, detector.name)
        (segment,) = plan_segments(video, next_frame(video), None)
        result = process_segment(segment, extractor, detector, chunk_frames=4)
        assert result.frames == CLIP_FRAMES // EVERY and result.detections and len(result.jpegs) == len(result.detections)
        assert commit_segment(store, result) is True
        counts = store.count_rows("detections"), store.count_rows("tracks")
        assert commit_segment(store, result) is False  # a retried worker's second copy
        assert (store.count_rows("detections"), store.count_rows("tracks")) == counts == (len(result.detections),
                                                                                          result.tracks)
        assert store.video(video.id).last_committed_frame == result.last_frame == CLIP_FRAMES - EVERY
        assert store.integrity_problems() == []


def test_a_killed_worker_is_redone_and_the_store_equals_a_single_ingest(
    workers: RayWorkers, clips: list[Path], reference: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        report = ingest_many(store, jobs(clips), workers, progress=False, kill_once_marker=str(marker))
        killed_pid = marker.read_text()  # a worker really exited mid-segment
        assert killed_pid and not any(p.endswith(f":{killed_pid}") for p in report.worker_processes)
        assert report.segments == 2 and store.integrity_problems() == []
        with Store.open(reference) as single:
            assert store.model == single.model
            for video in single.videos():
                mine = store.video(video.id)
                assert (mine.camera, mine.status, mine.last_committed_frame) == (video.camera, "done", 18)
                assert store.frame_digests(mine.id) == single.frame_digests(video.id)
                keys, features = detections_of(store, mine.id)
                expected_keys, expected = detections_of(single, video.id)
                assert keys == expected_keys  # every crop once, none twice
                np.testing.assert_allclose(features, expected, atol=1e-4)
                count = "SELECT COUNT(*) FROM tracks WHERE video_id = ?"
                assert store.db.execute(count, (mine.id,)).fetchone() == single.db.execute(count, (video.id,)).fetchone()


class _FailingDetector:
    """The real detector, failing on its second batch, as a crashed single-machine ingest would."""

    def __init__(self, detector: Detector) -> None:
        self.detector, self.calls, self.name = detector, 0, detector.name

    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("inference device lost")
        return self.detector.detect_batch(images)


def test_segments_resume_an_interrupted_ingest_and_end_tracks_at_cuts(
    workers: RayWorkers, clips: list[Path], setup: WorkerSetup, models, reference: Path, tmp_path: Path
) -> None:
    extractor, detector = models
    first = jobs(clips)[0]
    with Store.open(tmp_path / "store", writable=True, create=True) as store:
        with pytest.raises(RuntimeError, match="inference device lost"):
            ingest_video(store, first.info, first.options, extractor, _FailingDetector(detector), setup.model_source)
        assert store.video(1).last_committed_frame == 6  # one chunk of 4 sampled frames
        # Segments of 0.6 s: 6 frames at 10 fps, 3 sampled frames.
        report = ingest_many(store, jobs(clips), workers, segment_seconds=0.6, progress=False)
        assert report.videos[0].resumed_after == 6 and report.segments == 2 + 4
        assert store.integrity_problems() == []
        with Store.open(reference) as single:
            for video in single.videos():
                assert store.video(video.id).status == "done"
                assert store.frame_digests(video.id) == single.frame_digests(video.id)
                keys, _ = detections_of(store, video.id)
                assert len(keys) == len(set(keys))  # no crop stored twice
                assert {frame for frame, _ in keys} <= set(range(0, CLIP_FRAMES, EVERY))
        cuts = {1: [0, 8, 14, 20], 2: [0, 6, 12, 18, 20]}  # video 1 resumed at 8 (after the chunk up to 6)
        for track_id, video_id, first_frame, last_frame in store.db.execute(
            "SELECT id, video_id, first_frame, last_frame FROM tracks"
        ):
            ends = cuts[video_id]
            segment = max(i for i, start in enumerate(ends[:-1]) if start <= first_frame)
            assert last_frame < ends[segment + 1], f"track {track_id} crosses a segment cut"
        with pytest.raises(StoreError, match="already in store"):
            ingest_many(store, jobs(clips), workers, segment_seconds=0.6, progress=False)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--camera", "x", "--camera", "y", "--camera", "z"], "--camera was given 3 times for 2 videos"),
        (["--workers", "0"], "--workers 0 must be 1 or more"),
        (["--segment-seconds", "-1"], "--segment-seconds -1.0 must be a positive number"),
    ],
)
def test_ingest_many_refuses_bad_options_in_one_line(
    extra: list[str], message: str, clips: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reidkit.cli.main import main

    monkeypatch.setattr(sys, "argv", ["reidkit", "ingest-many", *map(str, clips), "--db", str(tmp_path / "s"), *extra])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "s").exists()
