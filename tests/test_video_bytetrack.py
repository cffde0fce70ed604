"""ByteTrack on scripted motion (crossings, gaps, occlusion, newcomers) and on real detections from the campus clip."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import ConfigError
from reidkit.video import ByteTracker, build_detector, iter_frames

W, H = 40.0, 100.0


def box(cx: float, cy: float, score: float = 0.9) -> list[float]:
    return [cx - W / 2, cy - H / 2, cx + W / 2, cy + H / 2, score]


def run(tracker: ByteTracker, script: list[list[tuple[str, list[float]]]]) -> dict[str, list[tuple[int, int]]]:
    """Feed scripted frames of (person name, detection) and return, per name, its (frame, track id) sightings.

    Each frame's detections are fed in reversed order so a tracker that relied on row order would be caught out.
    """
    sightings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for frame, people in enumerate(script):
        people = people[::-1]
        dets = np.array([d for _, d in people], dtype=np.float32).reshape(-1, 5)
        for tracked in tracker.update(dets, frame):
            name = people[tracked.det_index][0]
            np.testing.assert_allclose(tracked.box, dets[tracked.det_index, :4])
            assert tracked.score == pytest.approx(float(dets[tracked.det_index, 4]))
            sightings[name].append((frame, tracked.track_id))
    return sightings


def ids(sightings: list[tuple[int, int]]) -> set[int]:
    return {track_id for _, track_id in sightings}


def test_two_people_crossing_keep_their_ids() -> None:
    script = [[("a", box(100 + 8 * t, 200)), ("b", box(420 - 8 * t, 210))] for t in range(40)]
    seen = run(ByteTracker(frame_rate=10), script)
    assert len(ids(seen["a"])) == 1 and len(ids(seen["b"])) == 1
    assert ids(seen["a"]) != ids(seen["b"])
    assert len(seen["a"]) >= 39  # every frame once confirmed


def test_missed_frames_are_bridged() -> None:
    script = [[("a", box(100 + 6 * t, 200))] if t not in (12, 13, 14) else [] for t in range(30)]
    seen = run(ByteTracker(frame_rate=10), script)
    assert len(ids(seen["a"])) == 1
    assert {f for f, _ in seen["a"]} >= set(range(15, 30))


def test_low_score_detections_keep_an_occluded_track() -> None:
    """ByteTrack's point: a person scoring 0.3 while half hidden continues their track instead of being dropped."""
    script = [[("a", box(100 + 5 * t, 200, 0.3 if 10 <= t < 20 else 0.9))] for t in range(30)]
    seen = run(ByteTracker(frame_rate=10), script)
    assert len(ids(seen["a"])) == 1
    assert {f for f, _ in seen["a"]} >= set(range(10, 20))


def test_weak_detections_alone_never_start_a_track() -> None:
    script = [[("ghost", box(300, 200, 0.3))] for _ in range(20)]
    assert run(ByteTracker(frame_rate=10), script) == {}


def test_newcomer_gets_a_new_id() -> None:
    script = [
        [("a", box(100 + 4 * t, 200))] + ([("c", box(600, 300 - 3 * t))] if t >= 15 else []) for t in range(30)
    ]
    seen = run(ByteTracker(frame_rate=10), script)
    assert len(ids(seen["a"])) == 1 and len(ids(seen["c"])) == 1
    assert ids(seen["c"]) != ids(seen["a"])
    assert min(f for f, _ in seen["c"]) <= 16  # confirmed by its second sighting


def test_a_track_lost_longer_than_the_buffer_is_not_revived() -> None:
    tracker = ByteTracker(frame_rate=30, track_buffer=5)
    script = [[("a", box(200, 200))] if t < 10 or t >= 20 else [] for t in range(30)]
    seen = run(tracker, script)
    before = {i for f, i in seen["a"] if f < 10}
    after = {i for f, i in seen["a"] if f >= 20}
    assert len(before) == 1 and len(after) == 1 and before != after


def test_small_boxes_are_tracked_but_not_reported() -> None:
    tiny = [[("a", [100 + t, 100, 105 + t, 110, 0.9])] for t in range(10)]
    assert run(ByteTracker(frame_rate=10, min_box_area=100), tiny) == {}
    assert len(run(ByteTracker(frame_rate=10, min_box_area=10), tiny)["a"]) >= 9


def test_frames_must_advance_and_thresholds_must_be_ordered() -> None:
    tracker = ByteTracker(frame_rate=10)
    tracker.update(np.zeros((0, 5), np.float32), 5)
    with pytest.raises(ValueError, match="increase"):
        tracker.update(np.zeros((0, 5), np.float32), 5)
    with pytest.raises(ConfigError, match="low_thresh"):
        ByteTracker(frame_rate=10, track_thresh=0.1, low_thresh=0.2)


def test_real_detections_form_long_tracks(shared_dir: Path) -> None:
    pytest.importorskip("openvino")
    video = shared_dir / "videos" / "vtest.avi"
    model = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    if not video.is_file() or not model.is_file():
        pytest.skip("the shared video or detector is absent")
    frames = list(iter_frames(video, end_frame=50, progress=False))
    detections = build_detector("openvino", model_path=model).detect_batch([f.image for f in frames])
    tracker = ByteTracker(frame_rate=10)
    per_id: dict[int, int] = defaultdict(int)
    confident = 0
    for frame, dets in zip(frames, detections, strict=True):
        confident += int((dets[:, 4] >= 0.5).sum())
        outputs = tracker.update(dets, frame.index)
        assert len({t.track_id for t in outputs}) == len(outputs)
        assert len({t.det_index for t in outputs}) == len(outputs)
        for tracked in outputs:
            per_id[tracked.track_id] += 1
    reported = sum(per_id.values())
    assert reported >= 0.8 * confident  # nearly every confident detection ends up on a track
    assert len(per_id) <= reported / 10  # ids are far fewer than boxes: tracks are long
    assert max(per_id.values()) >= 40
