"""The records that flow from decoding through detection to tracking.

These are the only shapes the index stage sees from ``reidkit.video``: frames carry their own time so a sampled
stream (``every_n``) still maps back to wall-clock seconds, and a tracked box carries the row of the detection it
matched so the caller crops exactly what the detector saw rather than the Kalman-smoothed box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``image`` is RGB uint8 HxWx3; ``index`` counts decoded frames from 0 in stream order."""

    index: int
    time_s: float
    image: np.ndarray


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What the container says about a video, plus a content hash that identifies it across renames.

    ``num_frames`` is an estimate where the container does not store a frame count (it is then derived from the
    duration and frame rate); ``fingerprint`` is sha256 over the file size and its first and last MiB, so it is cheap
    for long videos yet changes when the content does. For a URL it is a hash of the URL itself.
    """

    path: str
    fps: float
    num_frames: int
    width: int
    height: int
    duration_s: float
    fingerprint: str
    # ``frame_digest`` of frame 0 (None for a URL): what lets a store recognise a recording that grew since.
    head_digest: str | None = None


@dataclass(frozen=True, slots=True)
class TrackedBox:
    """A track's state in one frame.

    ``box`` is the detection's own xyxy box (pixel coords, float) for the matched row ``det_index`` of the
    detections passed to ``ByteTracker.update`` in that frame; ``score`` is that detection's score.
    """

    track_id: int
    box: tuple[float, float, float, float]
    score: float
    det_index: int


@runtime_checkable
class Detector(Protocol):
    """A person detector.

    ``detect`` takes an RGB uint8 HxWx3 image and returns an (N, 5) float32 array of rows
    ``[x0, y0, x1, y1, score]`` in pixel coordinates of that image, sorted by descending score (N may be 0).
    ``detect_batch`` does the same for several images at once (it may just loop).
    """

    name: str

    def detect(self, image_rgb: np.ndarray) -> np.ndarray: ...

    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]: ...


def empty_detections() -> np.ndarray:
    """The (0, 5) float32 array every detector returns when it sees nobody."""
    return np.zeros((0, 5), dtype=np.float32)

