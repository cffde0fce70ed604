"""ByteTrack (Zhang et al., ECCV 2022): multi-person tracking within one camera by associating every detection box.

Its one idea over SORT is to keep low-score detections instead of discarding them: after the confident detections
are matched to the tracks, the still-unmatched tracks get a second chance against the weak ones, which are mostly
people partly hidden by someone else. That keeps tracks (and so track ids and re-id features) alive through
occlusions, which is exactly what person search needs.

Per frame:
1. Predict every track with a constant-velocity Kalman filter on (cx, cy, w/h, h).
2. Match confirmed and lost tracks to high-score detections (score >= ``track_thresh``) by IoU fused with the
   detection score, Hungarian assignment (``scipy.optimize.linear_sum_assignment``), gate ``match_thresh``.
3. Match the confirmed tracks still unmatched to low-score detections (``low_thresh`` <= score < ``track_thresh``)
   by IoU alone, gate 0.5; tracks unmatched after this become lost.
4. Match tentative tracks (seen once) to the leftover high-score detections (gate 0.7); unmatched ones are dropped.
5. Leftover detections scoring >= ``track_thresh + 0.1`` start tentative tracks; lost tracks older than the track
   buffer are removed, and a lost track that duplicates a live one (IoU > 0.85) is dropped.

The paper's gates assume 30 fps, where people move a few pixels between frames and a one-frame box is likely a
flicker. Sampled or low-rate video breaks both assumptions (at 1 fps people walk about their own width between
frames, and someone may be in view for one frame only), so three things follow the real time between the frames
the tracker is given (frame-number gap / ``frame_rate``, so ``--every`` sampling counts):

- Matching uses buffered IoU (Yang et al., "C-BIoU", WACV 2023): both boxes grow on every side by a fraction of
  their size that rises with the time beyond one 30 fps frame, so a person who moved further still overlaps their
  track; at 30 fps the buffer is zero and matching is the paper's.
- When frames are ``_ONE_SIGHTING_GAP_S`` or more apart, a confident new person is confirmed at once: one sighting
  is a one-crop track, where waiting for a second one would lose everyone seen in one frame.
- A lost track survives at least ``_MIN_LOST_SAMPLES`` processed frames, besides the time-based buffer.

Appearance (optional, BoT-SORT's rule, Aharon et al. 2022): when ``update`` is given each detection's Re-ID
feature, every track keeps a running average of its own (momentum 0.9), and the first association takes, per
pair, the smaller of the IoU cost and half the cosine distance; the appearance cost counts only for pairs that
already overlap (IoU cost <= 0.5) and look alike (half-distance <= ``appearance_thresh``). It lets two people who
cross keep their own ids where IoU alone would swap them; it never matches boxes that are far apart. The gate is
0.1, not BoT-SORT's 0.25 (tuned for its ResNet-50): with the shipped model on MOT17 frames, one person in
consecutive frames is within 0.05 in 95 % of pairs while half of all pairs of different people are within 0.23,
so 0.25 would let appearance vouch for strangers (benchmarks/RESULTS.md, issue 28 part 4).

We implement it rather than depend on Roboflow's ``trackers``: that package requires ``supervision`` and the full
``opencv-python`` wheel (5.x at the time of writing), which installs a second ``cv2`` over our
``opencv-python-headless<5`` and would drop the HOG people detector we rely on. See docs/video.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.optimize import linear_sum_assignment

from reidkit.errors import ConfigError
from reidkit.video.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from reidkit.video.types import TrackedBox

_LOW_MATCH_THRESH = 0.5
_TENTATIVE_MATCH_THRESH = 0.7
_NEW_TRACK_MARGIN = 0.1
_DUPLICATE_IOU = 0.85
_NATIVE_GAP_S = 1.0 / 30.0  # the frame interval the paper's gates were tuned at
_BUFFER_PER_S = 1.5  # box growth per side, as a fraction of its size, per second beyond that interval
_MAX_BUFFER = 1.5
_ONE_SIGHTING_GAP_S = 0.25  # 4 fps or slower: a single confident sighting makes a track
_MIN_LOST_SAMPLES = 2
_PROXIMITY_COST = 0.5  # BoT-SORT: appearance counts only for pairs with IoU >= 0.5 (of the buffered boxes)
_FEATURE_MOMENTUM = 0.9  # BoT-SORT's smoothing of a track's appearance


class TrackState(Enum):
    NEW = "new"
    TRACKED = "tracked"
    LOST = "lost"
    REMOVED = "removed"


@dataclass
class _Track:
    mean: np.ndarray
    covariance: np.ndarray
    box: np.ndarray
    score: float
    det_index: int
    start_frame: int
    last_frame: int
    state: TrackState = TrackState.NEW
    feature: np.ndarray | None = None  # running mean of its detections' unit Re-ID features, when given
    track_id: int = 0  # assigned on confirmation, so ids count people actually tracked, not one-frame flickers


class ByteTracker:
    """Tracks people in one camera; call ``update`` once per processed frame, in order.

    ``frame_rate`` is the video's frame rate and ``frame_index`` its frame numbers, so sampling every n-th frame keeps
    times right: the gap between the frame numbers given sets the matching buffer and whether one sighting confirms
    a track (module docstring). ``track_buffer`` is how long a lost track may come back, counted in frames at 30 fps
    as in the paper (30 = one second whatever the frame rate), and never fewer than two processed frames. Boxes
    smaller than ``min_box_area`` px² are tracked but not reported. ``appearance_thresh`` gates the Re-ID
    features passed to ``update`` (half the cosine distance; see the module docstring); it does nothing without them.
    """

    def __init__(
        self,
        frame_rate: float,
        track_thresh: float = 0.5,
        low_thresh: float = 0.1,
        match_thresh: float = 0.8,
        track_buffer: int = 30,
        min_box_area: float = 100.0,
        appearance_thresh: float = 0.1,
    ) -> None:
        if frame_rate <= 0:
            raise ConfigError(f"tracker frame_rate must be positive, got {frame_rate}")
        if not 0.0 <= low_thresh < track_thresh < 1.0:
            raise ConfigError(
                f"tracker thresholds need 0 <= low_thresh < track_thresh < 1, got {low_thresh} and {track_thresh}"
            )
        if not 0.0 < match_thresh <= 1.0:
            raise ConfigError(f"tracker match_thresh must be in (0, 1], got {match_thresh}")
        if not 0.0 < appearance_thresh <= 1.0:
            raise ConfigError(f"tracker appearance_thresh must be in (0, 1], got {appearance_thresh}")
        if track_buffer < 1:
            raise ConfigError(f"tracker track_buffer must be >= 1 frame, got {track_buffer}")
        self.track_thresh = track_thresh
        self.low_thresh = low_thresh
        self.match_thresh = match_thresh
        self.min_box_area = min_box_area
        self.appearance_thresh = appearance_thresh
        self.frame_rate = frame_rate
        self.max_time_lost = max(1, int(frame_rate / 30.0 * track_buffer))
        self._kalman = KalmanBoxFilter()
        self._tracked: list[_Track] = []
        self._lost: list[_Track] = []
        self._next_id = 1
        self._last_frame: int | None = None
        self._features: np.ndarray | None = None  # this frame's unit Re-ID features, one row per detection

    def update(
        self, detections: np.ndarray, frame_index: int, features: np.ndarray | None = None
    ) -> list[TrackedBox]:
        """Advance the tracks with this frame's (N, 5) ``[x0, y0, x1, y1, score]`` detections and, optionally, their
        (N, D) Re-ID features (one row per detection, any scale: they are normalised here).

        Returns one ``TrackedBox`` per confirmed track that a detection updated in this frame; ``det_index`` is that
        detection's row in ``detections``.
        """
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame_index must increase: got {frame_index} after {self._last_frame}")
        gap = 0 if self._last_frame is None else frame_index - self._last_frame
        self._last_frame = frame_index
        seconds = gap / self.frame_rate
        buffer = min(_MAX_BUFFER, _BUFFER_PER_S * max(0.0, seconds - _NATIVE_GAP_S))
        # on the very first frame there is nothing to confuse a new person with; at low rates one sighting is all
        confirm_at_once = gap == 0 or seconds >= _ONE_SIGHTING_GAP_S
        dets = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
        self._features = _unit_rows(features, len(dets))
        scores = dets[:, 4]
        high = np.flatnonzero(scores >= self.track_thresh)
        low = np.flatnonzero((scores >= self.low_thresh) & (scores < self.track_thresh))

        confirmed = [t for t in self._tracked if t.state == TrackState.TRACKED]
        tentative = [t for t in self._tracked if t.state == TrackState.NEW]
        pool = confirmed + self._lost
        self._predict(pool + tentative)

        # 1. confident detections against every track that may still be out there
        appearance = self._appearance_cost(pool, high)
        matches, free_tracks, free_high = _associate(
            pool, dets, high, self.match_thresh, buffer, fuse_score=True, appearance=appearance
        )
        for track, det in matches:
            self._apply(track, dets, det, frame_index)

        # 2. weak detections rescue live tracks the confident ones missed
        live = [t for t in free_tracks if t.state == TrackState.TRACKED]
        matches, still_free, _ = _associate(live, dets, low, _LOW_MATCH_THRESH, buffer, fuse_score=False)
        for track, det in matches:
            self._apply(track, dets, det, frame_index)
        for track in still_free:
            track.state = TrackState.LOST

        # 3. tentative tracks must be confirmed by a second confident detection at once
        matches, dropped, free_high = _associate(
            tentative, dets, free_high, _TENTATIVE_MATCH_THRESH, buffer, fuse_score=True
        )
        for track, det in matches:
            self._apply(track, dets, det, frame_index)
        for track in dropped:
            track.state = TrackState.REMOVED

        # 4. leftover confident detections start tracks
        for det in free_high:
            if scores[det] >= self.track_thresh + _NEW_TRACK_MARGIN:
                self._tracked.append(self._start(dets, det, frame_index, confirm=confirm_at_once))

        max_lost = max(self.max_time_lost, _MIN_LOST_SAMPLES * gap)
        for track in self._lost:
            if track.state == TrackState.LOST and frame_index - track.last_frame > max_lost:
                track.state = TrackState.REMOVED
        everyone = self._tracked + self._lost
        self._tracked = [t for t in everyone if t.state in (TrackState.TRACKED, TrackState.NEW)]
        self._lost = [t for t in everyone if t.state == TrackState.LOST]
        self._drop_duplicates()

        return [
            TrackedBox(
                track_id=t.track_id,
                box=(float(t.box[0]), float(t.box[1]), float(t.box[2]), float(t.box[3])),
                score=t.score,
                det_index=t.det_index,
            )
            for t in self._tracked
            if t.state == TrackState.TRACKED
            and t.last_frame == frame_index
            and (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]) >= self.min_box_area
        ]

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        means = np.stack([t.mean for t in tracks])
        covariances = np.stack([t.covariance for t in tracks])
        # a lost person's size stays what it was last seen, rather than drifting with a stale height velocity
        not_live = np.array([t.state != TrackState.TRACKED for t in tracks])
        means[not_live, 7] = 0.0
        means, covariances = self._kalman.predict(means, covariances)
        for track, mean, covariance in zip(tracks, means, covariances, strict=True):
            track.mean, track.covariance = mean, covariance

    def _apply(self, track: _Track, dets: np.ndarray, det: int, frame_index: int) -> None:
        measurement = xyxy_to_xyah(dets[det : det + 1, :4])[0]
        track.mean, track.covariance = self._kalman.update(track.mean, track.covariance, measurement)
        track.box = dets[det, :4].copy()
        track.score = float(dets[det, 4])
        track.det_index = int(det)
        track.last_frame = frame_index
        if self._features is not None:
            feature = self._features[det]
            if track.feature is not None:
                feature = _FEATURE_MOMENTUM * track.feature + (1.0 - _FEATURE_MOMENTUM) * feature
            track.feature = feature / max(float(np.linalg.norm(feature)), 1e-12)
        if track.state == TrackState.NEW:
            self._confirm(track)
        track.state = TrackState.TRACKED

    def _start(self, dets: np.ndarray, det: int, frame_index: int, confirm: bool) -> _Track:
        mean, covariance = self._kalman.initiate(xyxy_to_xyah(dets[det : det + 1, :4])[0])
        track = _Track(
            mean=mean,
            covariance=covariance,
            box=dets[det, :4].copy(),
            score=float(dets[det, 4]),
            det_index=int(det),
            start_frame=frame_index,
            last_frame=frame_index,
            feature=None if self._features is None else self._features[det].copy(),
        )
        if confirm:
            self._confirm(track)
            track.state = TrackState.TRACKED
        return track

    def _appearance_cost(self, tracks: list[_Track], candidates: np.ndarray) -> np.ndarray | None:
        """Half the cosine distance between each track's feature and each candidate's, 1 where either has none or
        the pair looks too different (``appearance_thresh``); None when this frame came without features."""
        if self._features is None or not tracks or len(candidates) == 0:
            return None
        cost = np.ones((len(tracks), len(candidates)))
        known = [i for i, t in enumerate(tracks) if t.feature is not None]
        if known:
            gallery = np.stack([t.feature for t in tracks if t.feature is not None])
            cost[known] = np.clip(1.0 - gallery @ self._features[candidates].T, 0.0, 2.0) / 2.0
        cost[cost > self.appearance_thresh] = 1.0
        return cost

    def _confirm(self, track: _Track) -> None:
        track.track_id = self._next_id
        self._next_id += 1

    def _drop_duplicates(self) -> None:
        """A lost track overlapping a live one is the same person twice; keep whichever has been tracked longer."""
        if not self._tracked or not self._lost:
            return
        overlap = iou_matrix(_predicted_boxes(self._tracked), _predicted_boxes(self._lost))
        drop_tracked: set[int] = set()
        drop_lost: set[int] = set()
        for i, j in zip(*np.nonzero(overlap > _DUPLICATE_IOU), strict=True):
            live, lost = self._tracked[i], self._lost[j]
            if live.last_frame - live.start_frame > lost.last_frame - lost.start_frame:
                drop_lost.add(int(j))
            else:
                drop_tracked.add(int(i))
        self._tracked = [t for i, t in enumerate(self._tracked) if i not in drop_tracked]
        self._lost = [t for j, t in enumerate(self._lost) if j not in drop_lost]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (M, 4) and (N, 4) xyxy boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _unit_rows(features: np.ndarray | None, count: int) -> np.ndarray | None:
    if features is None:
        return None
    rows = np.asarray(features, dtype=np.float64)
    if rows.ndim != 2 or len(rows) != count:
        raise ValueError(f"features must be one row per detection: got shape {rows.shape} for {count} detections")
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def _predicted_boxes(tracks: list[_Track]) -> np.ndarray:
    return xyah_to_xyxy(np.stack([t.mean for t in tracks]))


def _buffered(boxes: np.ndarray, buffer: float) -> np.ndarray:
    """xyxy boxes grown on every side by ``buffer`` times their width and height (C-BIoU's matching space)."""
    if buffer <= 0.0:
        return boxes
    size = boxes[:, 2:4] - boxes[:, 0:2]
    return np.c_[boxes[:, 0:2] - buffer * size, boxes[:, 2:4] + buffer * size]


def _associate(
    tracks: list[_Track],
    dets: np.ndarray,
    candidates: np.ndarray,
    max_cost: float,
    buffer: float,
    fuse_score: bool,
    appearance: np.ndarray | None = None,
) -> tuple[list[tuple[_Track, int]], list[_Track], np.ndarray]:
    """Hungarian matching on 1 - IoU of the ``buffer``-grown boxes (times the detection score when fused), or the
    ``appearance`` cost where that is lower and the boxes overlap (BoT-SORT's fusion); pairs costing more than
    ``max_cost`` stay unmatched. Returns the (track, detection row) pairs, the unmatched tracks and unmatched
    detection rows."""
    if not tracks or len(candidates) == 0:
        return [], list(tracks), candidates
    similarity = iou_matrix(_buffered(_predicted_boxes(tracks), buffer), _buffered(dets[candidates, :4], buffer))
    far_apart = similarity < 1.0 - _PROXIMITY_COST
    if fuse_score:
        similarity = similarity * dets[candidates, 4][None, :]
    cost = 1.0 - similarity
    if appearance is not None:
        cost = np.minimum(cost, np.where(far_apart, 1.0, appearance))
    rows, cols = linear_sum_assignment(np.where(cost > max_cost, max_cost + 1.0, cost))
    accepted = cost[rows, cols] <= max_cost
    rows, cols = rows[accepted], cols[accepted]
    matched_tracks = set(rows.tolist())
    matched_dets = set(cols.tolist())
    pairs = [(tracks[r], int(candidates[c])) for r, c in zip(rows, cols, strict=True)]
    free_tracks = [t for i, t in enumerate(tracks) if i not in matched_tracks]
    free_dets = np.array([d for i, d in enumerate(candidates) if i not in matched_dets], dtype=np.int64)
    return pairs, free_tracks, free_dets
