"""What a live ingest tells its listeners after each committed segment: the tracks that the segment created or grew.

The contract between the live ingest (the producer) and whatever reacts to live tracks (watch-list alerts, online
people, zones): listeners see only committed rows, so anything they record (an alert naming a track) points at a
track that a crash cannot take back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TrackUpdate:
    """One store track as it stands after a committed segment of a live camera."""

    track_id: int                # the store's tracks.id
    camera: str                  # the camera's name in the store
    video_id: int                # the store's videos.id of the live session holding the track
    first_epoch: float           # seconds since 1970 (UTC) of the track's first and latest sighting
    last_epoch: float
    num_crops: int
    vector: np.ndarray           # the track's L2-normalised feature (the store's track vector), float32
    best_detection_id: int       # the crop that shows the track best (highest quality so far)
    first_frame_received: float  # time.time() when the frame of the track's first sighting was read from the stream:
                                 # the start of the "first frame to alert" latency


class TrackListener(Protocol):
    """Called by the live ingest in its own thread after each segment commit, with that segment's tracks."""

    def on_tracks(self, updates: list[TrackUpdate]) -> None: ...
