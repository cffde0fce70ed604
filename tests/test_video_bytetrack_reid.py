"""ByteTrack with Re-ID features (BoT-SORT's gated fusion) on scripted occlusions where motion alone is wrong."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from reidkit.video import ByteTracker

W, H = 40.0, 100.0
DIM = 16


def box(cx: float, cy: float, score: float = 0.9) -> list[float]:
    return [cx - W / 2, cy - H / 2, cx + W / 2, cy + H / 2, score]


def looks(name: str, frame: int) -> np.ndarray:
    """A person's appearance: their own direction in feature space plus a little per-frame noise."""
    base = np.zeros(DIM)
    base[sum(map(ord, name)) % DIM] = 1.0
    return base + np.random.default_rng(frame * 31 + len(name)).normal(0.0, 0.05, DIM)


def run(
    script: list[list[tuple[str, list[float]]]], with_features: bool, appearance: Callable = looks
) -> dict[str, set[int]]:
    """Per person name, the track ids the tracker gave their detections (fed in reversed order each frame)."""
    tracker = ByteTracker(frame_rate=10)
    seen: dict[str, set[int]] = {}
    for frame, people in enumerate(script):
        people = people[::-1]
        dets = np.array([d for _, d in people], dtype=np.float32).reshape(-1, 5)
        features = np.array([appearance(name, frame) for name, _ in people]).reshape(-1, DIM) if with_features else None
        for tracked in tracker.update(dets, frame, features):
            seen.setdefault(people[tracked.det_index][0], set()).add(tracked.track_id)
    return seen


def meet_and_turn_back(speed: float = 3.0) -> list[list[tuple[str, list[float]]]]:
    """Two people walk up to each other, overlap, and each goes back the way they came: a constant-velocity
    prediction carries each track on into the other person."""
    frames = []
    for t in range(40):
        offset = speed * (t if t < 20 else 40 - t)
        frames.append([("ann", box(200 + offset, 200)), ("bob", box(320 - offset, 204))])
    return frames


def test_motion_alone_swaps_people_who_meet_and_turn_back() -> None:
    seen = run(meet_and_turn_back(), with_features=False)
    assert len(seen["ann"]) > 1 or len(seen["bob"]) > 1 or seen["ann"] & seen["bob"]


def test_appearance_keeps_each_person_their_own_id_through_the_meeting() -> None:
    seen = run(meet_and_turn_back(), with_features=True)
    assert len(seen["ann"]) == 1 and len(seen["bob"]) == 1
    assert seen["ann"] != seen["bob"]


def test_appearance_never_matches_boxes_far_apart() -> None:
    """Ann leaves; someone who looks exactly like her appears across the frame: a new track, not Ann's (the
    appearance cost counts only for boxes that overlap)."""
    script = [[("ann", box(100, 200))] for _ in range(5)] + [[("twin", box(600, 200))] for _ in range(5)]
    tracker = ByteTracker(frame_rate=10)
    ids = []
    for frame, people in enumerate(script):
        dets = np.array([d for _, d in people], dtype=np.float32)
        ids.append({t.track_id for t in tracker.update(dets, frame, np.stack([looks("ann", frame)]))})
    assert ids[0] == ids[4] and len(ids[0]) == 1
    assert len(ids[9]) == 1 and ids[9] != ids[0]  # the newcomer is confirmed on its second sighting, as ever


def test_identical_looks_leave_motion_to_decide() -> None:
    """Features that all look alike leave motion to decide: the same ids as without features in a plain crossing."""
    script = [[("a", box(100 + 8 * t, 200)), ("b", box(420 - 8 * t, 210))] for t in range(40)]
    plain = run(script, with_features=False)
    assert plain.keys() == {"a", "b"}
    assert run(script, with_features=True, appearance=lambda name, frame: np.ones(DIM)) == plain


def test_features_must_be_one_row_per_detection() -> None:
    tracker = ByteTracker(frame_rate=10)
    with pytest.raises(ValueError, match="one row per detection"):
        tracker.update(np.array([box(100, 200)], dtype=np.float32), 0, np.ones((2, DIM)))
    with pytest.raises(Exception, match="appearance_thresh"):
        ByteTracker(frame_rate=10, appearance_thresh=0.0)
