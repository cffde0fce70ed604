"""A video cut into segments that separate workers ingest, and the one writer that commits them: no Ray in here.

A worker (``process_segment``) decodes, detects, tracks and embeds one segment and returns everything the store
needs as plain data: the detections with their features, each crop as JPEG bytes, every frame's pixel digest. The
writer (``commit_segment``) writes the crop files and commits the whole segment in ONE SQLite transaction that also
advances the video's ``last_committed_frame`` past the segment.

Segments of a video are committed in order, so ``last_committed_frame`` says exactly which are done: a segment is
done when the video's last committed frame lies at or after its first frame. That makes a commit idempotent (a
segment handed in twice, e.g. by a retried worker, is skipped the second time, keyed by video + first frame) and an
interrupted run resumable with the single-machine ingest's own rules (``ingest.begin_ingest``, ``next_frame``).

Tracks end at segment boundaries: each segment gets a fresh tracker, so a person walking across a cut is two tracks
(two gallery entries, both found by search), exactly as across the resume point of an interrupted ingest. Segments
do not overlap, so no frame is detected or stored twice.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from reidkit.errors import VideoError
from reidkit.search.ingest import (
    OPEN_END,
    STAGES,
    Embedder,
    IngestReport,
    encode_jpeg,
    process_chunks,
    write_crop,
)
from reidkit.store.rows import NewDetection, VideoRecord
from reidkit.store.writer import Store
from reidkit.video import Detector, TruncatedVideoWarning, iter_frames


@dataclass(frozen=True)
class Segment:
    """Frames ``start_frame``, ``start_frame + every_n``, ... below ``end_frame`` of stored video ``video_id``;
    ``index`` is the segment's place in its video (commits go in that order)."""

    video_id: int
    index: int
    path: str
    fps: float
    start_frame: int
    end_frame: int  # exclusive; OPEN_END when the container does not tell the video's length
    every_n: int


@dataclass
class SegmentResult:
    """What a worker hands the writer for one segment: detections (features filled in, crop paths set) with their
    JPEG bytes in the same order, digests of every decoded frame, and ``last_frame`` (-1: nothing decoded)."""

    segment: Segment
    frames: int
    last_frame: int
    detections: list[NewDetection]
    jpegs: list[bytes]
    digests: dict[int, str]
    tracks: int
    warnings: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    worker: str = ""  # host:pid of the process that made it
    decode_error: str | None = None  # why no frame decoded (``last_frame`` is then -1)


def plan_segments(video: VideoRecord, first: int, segment_frames: int | None) -> list[Segment]:
    """``video`` from frame ``first`` to its end in segments of about ``segment_frames`` frames, cut on the video's
    every-n-th-frame grid (so they hold exactly the frames a single ingest would process); ``None``, or a video of
    unknown length, is one segment."""
    end = video.end_frame
    if first >= end:
        return []
    if segment_frames is None or end >= OPEN_END:
        return [Segment(video.id, 0, video.path, video.fps, first, end, video.every_n)]
    step = max(1, round(segment_frames / video.every_n)) * video.every_n
    starts = range(first, end, step)
    return [
        Segment(video.id, index, video.path, video.fps, start, min(start + step, end), video.every_n)
        for index, start in enumerate(starts)
    ]


def process_segment(
    segment: Segment,
    extractor: Embedder,
    detector: Detector,
    chunk_frames: int = 20,
    jpeg_quality: int = 90,
    after_chunk: Callable[[], None] | None = None,
) -> SegmentResult:
    """Decode, detect, track and embed one segment (the worker's whole job); nothing is written anywhere.

    ``after_chunk`` runs after each chunk of ``chunk_frames`` frames (the fault-injection hook of the distributed
    ingest's tests)."""
    report = IngestReport(segment.video_id, "", segment.path)
    result = SegmentResult(segment, 0, -1, [], [], {}, 0, worker=f"{socket.gethostname()}:{os.getpid()}")
    end = None if segment.end_frame >= OPEN_END else segment.end_frame
    track_keys: set[int] = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncatedVideoWarning)
        try:
            frames = iter_frames(segment.path, segment.every_n, segment.start_frame, end, progress=False)
            chunks = process_chunks(frames, segment.video_id, segment.fps, chunk_frames, extractor, detector, report)
            for chunk in chunks:
                result.frames += chunk.frames
                result.last_frame = chunk.last_frame
                result.detections += chunk.detections
                result.jpegs += [encode_jpeg(crop, jpeg_quality) for crop in chunk.crops]
                result.digests.update(chunk.digests)
                track_keys.update(detection.track_key for detection in chunk.detections)
                if after_chunk is not None:
                    after_chunk()
        except VideoError as exc:
            # No frame of the segment decoded: past the real end of a video whose length was estimated, or an
            # unusable file; the writer tells which from whether any segment of the video had frames.
            result.decode_error = str(exc)
    result.tracks = len(track_keys)
    result.warnings = [str(w.message) for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    result.stage_seconds = report.stage_seconds
    return result


def commit_segment(store: Store, result: SegmentResult) -> bool:
    """Write the segment's crop files, then commit it in one transaction (files first, as ``ingest`` does); False,
    and nothing written, when the segment is already in the store. Segments of a video must come in order."""
    segment = result.segment
    if store.video(segment.video_id).last_committed_frame >= segment.start_frame:
        return False
    if result.last_frame < 0:
        return True  # past the end of the video: no frame, nothing to record
    started = time.perf_counter()
    folder = store.crop_folder(segment.video_id)
    for detection, data in zip(result.detections, result.jpegs):
        write_crop(store.root / detection.crop_path, data, folder)
    store.commit_chunk(segment.video_id, result.detections, result.last_frame, {}, result.digests)
    result.stage_seconds["write"] = result.stage_seconds.get("write", 0.0) + time.perf_counter() - started
    return True
