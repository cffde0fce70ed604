"""One camera's side of the live ingest: its store rows (a ``videos`` row per connection), its tracker, the segment
of processed frames waiting to be committed, its gaps and health.

The shared worker (``watcher``) detects and embeds frames of every camera in batches and hands each camera its
tracked, embedded detections; this object commits them in segments of ~``commit_seconds`` of footage, through the
recordings' own commit (``search.ingest.commit_processed``: crop files first, then one SQLite transaction advancing
the row's ``last_committed_frame``), and then tells the listeners which tracks the segment created or grew.

Crash rules, as for recordings: committed rows stay; a file camera resumes after its last committed frame
(``search.ingest.begin_ingest``); a stream starts a new session row, and the sessions a killed watcher left
``ingesting`` are closed (their uncommitted crop files swept) with a gap from their last committed footage.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from reidkit.errors import ReidkitError, StoreError
from reidkit.live.camera_db import CameraHealth, close_gap, open_gap, write_health
from reidkit.live.events import TrackListener, TrackUpdate
from reidkit.live.sources import (
    CameraSource,
    Connected,
    Disconnected,
    Event,
    Finished,
    FrameQueue,
    LiveFrame,
    ReadPlan,
    Unreachable,
)
from reidkit.search.ingest import (
    OPEN_END,
    IngestOptions,
    IngestReport,
    ProcessedChunk,
    begin_ingest,
    commit_processed,
    next_frame,
    track_chunk,
)
from reidkit.store.rows import ModelInfo, NewDetection, VideoRecord, epoch_seconds
from reidkit.store.writer import Store
from reidkit.video import ByteTracker, frame_digest, probe_video

log = logging.getLogger(__name__)
_FPS_WINDOW_S = 5.0
_FORGET_TRACK_S = 60.0


@dataclass
class Segment:
    """Processed frames of the current connection not committed yet."""

    frames: int = 0
    last_frame: int = -1
    first_time_s: float | None = None
    last_time_s: float = 0.0
    detections: list[NewDetection] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    digests: dict[int, str] = field(default_factory=dict)


@dataclass
class CameraSettings:
    """What a camera's ingest needs from the watch options."""

    every_n: int
    commit_seconds: float
    jpeg_quality: int
    detector: str
    model: ModelInfo


class CameraIngest:
    def __init__(self, store: Store, live: sqlite3.Connection, source: CameraSource, settings: CameraSettings,
                 queue: FrameQueue, listeners: Sequence[TrackListener] = ()) -> None:
        self.store, self.live, self.source, self.settings, self.queue = store, live, source, settings, queue
        self.listeners = listeners  # told of every commit's tracks, a session's last one included
        self.health = CameraHealth(source.name, source.public_url)
        self.report = IngestReport(0, source.name, source.public_url)
        self.video: VideoRecord | None = None
        self.tracker: ByteTracker | None = None
        self.track_rows: dict[int, int] = {}
        self.first_received: dict[int, float] = {}
        self.last_seen: dict[int, float] = {}  # tracker id -> footage second it was last seen: what may be forgotten
        self.segment = Segment()
        self.gap_id: int | None = None
        self.finished = False
        self.sessions: list[int] = []
        self.note: str | None = None  # why a camera did nothing (a file already ingested)
        self.latest_image: np.ndarray | None = None
        self.recent: deque[float] = deque()

    # --- connections ----------------------------------------------------------------------------------------------
    def prepare(self) -> ReadPlan | None:
        """Claim what the reader starts from: a file's row (resumed after its last commit), or for a stream close
        the sessions a killed watcher left open. None: nothing to read (the file is already in the store)."""
        every = self.settings.every_n
        if self.source.kind != "file":
            self._close_stale_sessions()
            return ReadPlan(every)
        options = IngestOptions(self.source.name, datetime.now(UTC), every_n=every, progress=False)
        try:
            self.video, report = begin_ingest(self.store, probe_video(self.source.url), options,
                                              self.settings.model, self.settings.detector)
        except StoreError as exc:  # its frames are in the store already
            self.note, self.finished, self.health.state = str(exc), True, "finished"
            return None
        except ReidkitError as exc:  # not a video FFmpeg can read: this camera fails, the others go on
            self.finished, self.health.state, self.health.error = True, "failed", str(exc)
            return None
        self.report.resumed_after = report.resumed_after
        if next_frame(self.video) >= self.video.end_frame:  # every frame was committed before a kill
            self.store.finish_video(self.video.id)
            self.note, self.finished, self.health.state = "already ingested to its end", True, "finished"
            return None
        self._start_session(self.video.fps)
        return ReadPlan(every, start_frame=next_frame(self.video))

    def _close_stale_sessions(self) -> None:
        for video in self.store.videos():
            if video.camera == self.source.name and video.status == "ingesting" and video.end_frame >= OPEN_END:
                self.store.remove_orphan_crops(video)
                self.store.finish_video(video.id)
                self.gap_id = open_gap(self.live, self.source.name, _footage_end(video),
                                       "the watcher stopped without closing the stream (killed)", video.id)

    def handle(self, event: Event) -> None:
        if isinstance(event, Connected):
            self._connected(event)
        elif isinstance(event, Disconnected):
            self._end_session()
            self.health.reconnects += 1
            self.health.state = "reconnecting"
            self.health.error = event.reason
            last = self.health.last_frame_epoch or event.at
            self.gap_id = open_gap(self.live, self.source.name, last, event.reason, self.sessions[-1] if
                                   self.sessions else None)
        elif isinstance(event, Unreachable):
            self.health.error = event.reason  # the state stays: connecting, or reconnecting after a drop
        elif isinstance(event, Finished):
            self._end_session()
            self.finished = True
            self.health.state = "failed" if event.error else "finished"
            self.health.error = event.error

    def _connected(self, event: Connected) -> None:
        if self.source.kind == "file":
            return  # its row was claimed by ``prepare``
        public = self.source.public_url
        fingerprint = hashlib.sha256(f"live:{public}:{event.at}".encode()).hexdigest()
        self.video = self.store.add_video(
            camera=self.source.name, path=public, fingerprint=fingerprint, start_frame=0, end_frame=OPEN_END,
            every_n=self.settings.every_n, detector=self.settings.detector,
            start_time=datetime.fromtimestamp(event.at, UTC), fps=event.fps, width=event.width, height=event.height,
        )
        if self.gap_id is not None:
            close_gap(self.live, self.gap_id, event.at, self.video.id)
            self.gap_id = None
        self._start_session(event.fps)

    def _start_session(self, fps: float) -> None:
        assert self.video is not None
        self.sessions.append(self.video.id)
        self.report.video_id = self.video.id
        self.tracker = ByteTracker(frame_rate=fps)
        self.track_rows, self.first_received, self.last_seen = {}, {}, {}
        self.health.state, self.health.video_id, self.health.error = "live", self.video.id, None

    def _end_session(self) -> None:
        """Commit what is processed and finish the connection's row (a file's only when it was read to the end)."""
        if self.video is None:
            return
        self.commit()
        self.store.finish_video(self.video.id)
        self.video, self.tracker = None, None

    # --- frames ---------------------------------------------------------------------------------------------------
    def track(self, frames: Sequence[LiveFrame], detected: Sequence[np.ndarray]) -> list[tuple[NewDetection,
                                                                                            np.ndarray]]:
        """The frames' tracked detections with crops (features still empty), remembering when each new track's
        first frame was read."""
        assert self.video is not None and self.tracker is not None
        pending = track_chunk([f.frame for f in frames], detected, self.tracker, self.video.id)
        received = {f.frame.index: f.received for f in frames}
        for detection, _ in pending:
            self.first_received.setdefault(detection.track_key, received[detection.frame_index])
        return pending

    def add(self, frames: Sequence[LiveFrame], detections: list[NewDetection], crops: list[np.ndarray]) -> None:
        segment = self.segment
        for live in frames:
            frame = live.frame
            segment.first_time_s = frame.time_s if segment.first_time_s is None else segment.first_time_s
            segment.last_time_s, segment.last_frame = frame.time_s, frame.index
            if self.source.kind == "file":
                segment.digests[frame.index] = frame_digest(frame.image)  # as recordings do: a grown file is found
        self.recent.extend([time.time()] * len(frames))  # when processed: what frames/s counts
        segment.frames += len(frames)
        self.last_seen.update((detection.track_key, detection.time_s) for detection in detections)
        segment.detections += detections
        segment.crops += crops
        self.latest_image = frames[-1].frame.image
        self.health.frames_read += len(frames)
        self.health.last_frame_epoch = frames[-1].received
        self.health.lag_s = time.time() - frames[-1].received  # read -> detected, tracked and embedded

    def commit_due(self) -> bool:
        segment = self.segment
        return segment.first_time_s is not None and (
            segment.last_time_s - segment.first_time_s >= self.settings.commit_seconds)

    def commit(self) -> int:
        """Commit the segment (one transaction) and tell the listeners its tracks; how many frames it held."""
        segment, video = self.segment, self.video
        if video is None or segment.frames == 0:
            return 0
        chunk = ProcessedChunk(segment.frames, segment.last_frame, segment.detections, segment.crops,
                               segment.digests)
        commit_processed(self.store, video.id, chunk, self.track_rows, self.settings.jpeg_quality, self.report)
        self.report.frames += segment.frames
        self.segment = Segment()
        keys = {detection.track_key for detection in segment.detections}
        if self.listeners and keys:
            updates = self._updates(video, keys)
            for listener in self.listeners:
                try:
                    listener.on_tracks(updates)
                except Exception:  # noqa: BLE001 - a listener's bug must not stop the cameras
                    log.exception("track listener %r failed", listener)
        self._forget_gone_tracks(segment.last_time_s)
        return chunk.frames

    def _forget_gone_tracks(self, now_s: float) -> None:
        """Memory stays bounded on a stream that runs for weeks: a tracker id unseen for ``_FORGET_TRACK_S`` of
        footage is gone for good (ByteTrack drops a lost track after about a second)."""
        gone = [key for key, seen in self.last_seen.items() if seen < now_s - _FORGET_TRACK_S]
        for key in gone:
            del self.last_seen[key]
            self.track_rows.pop(key, None)
            self.first_received.pop(key, None)

    def _updates(self, video: VideoRecord, keys: set[int]) -> list[TrackUpdate]:
        ids = {self.track_rows[key]: key for key in keys}
        start = epoch_seconds(video.start_time) if video.start_time is not None else 0.0
        vector_ids, vectors = self.store.track_vectors(np.array(sorted(ids), dtype=np.int64))
        by_id = {int(i): vectors[n] for n, i in enumerate(vector_ids)}
        rows = self.store.db.execute(
            "SELECT t.id, t.first_time_s, t.last_time_s, t.num_crops, (SELECT d.id FROM detections d WHERE "
            "d.track_id = t.id ORDER BY d.quality DESC, d.id LIMIT 1) FROM tracks t WHERE t.id IN "
            f"({', '.join('?' * len(ids))}) ORDER BY t.id", tuple(ids)).fetchall()
        return [
            TrackUpdate(int(track_id), self.source.name, video.id, start + first, start + last, int(crops),
                        by_id[int(track_id)], int(best), self.first_received[ids[int(track_id)]])
            for track_id, first, last, crops, best in rows
        ]

    # --- health ---------------------------------------------------------------------------------------------------
    def write_health(self) -> None:
        now = time.time()
        while self.recent and self.recent[0] < now - _FPS_WINDOW_S:
            self.recent.popleft()
        self.health.fps = len(self.recent) / _FPS_WINDOW_S
        self.health.frames_dropped = self.queue.dropped
        write_health(self.live, self.health)

    def close(self) -> None:
        """Stop: commit what is processed, finish the open row (a file's stays resumable), record health."""
        if self.video is not None and self.source.kind == "file":
            self.commit()
            self.video = None
        self._end_session()
        if not self.finished:
            self.health.state = "stopped"
        self.write_health()


def _footage_end(video: VideoRecord) -> float:
    start = epoch_seconds(video.start_time) if video.start_time is not None else time.time()
    frames = max(video.last_committed_frame + 1, 0)
    return start + (frames / video.fps if video.fps > 0 else 0.0)


def with_features(pending: Sequence[tuple[NewDetection, np.ndarray]], features: np.ndarray | None,
                  attributes: np.ndarray | None, offset: int) -> list[NewDetection]:
    """``pending``'s detections with rows ``offset...`` of a batch's features (and attribute probabilities)."""
    if features is None:
        return []
    return [
        replace(detection, feature=features[offset + i],
                attributes=None if attributes is None else attributes[offset + i])
        for i, (detection, _) in enumerate(pending)
    ]
