"""The store's rows as typed records, and the SQL that reads them: every other module sees these, never raw tuples.

Times: a video's ``start_time`` is kept as given (ISO 8601, naive read as UTC); a row's wall-clock time is that plus
its seconds into the video, or None when the video was ingested without a start time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from reidkit.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    """The one model whose features a store holds: ``source`` says how to load it again (checkpoint path, or
    ``imagenet:<model>/<backbone>`` for an untrained model); ``attribute_schema`` names the attributes it predicts
    (None: no attribute head)."""

    model_id: str
    feature_dim: int
    source: str
    attribute_schema: str | None = None


@dataclass(frozen=True)
class VideoRecord:
    id: int
    camera: str
    path: str
    fingerprint: str
    start_frame: int
    end_frame: int
    every_n: int
    detector: str
    start_time: datetime | None
    fps: float
    width: int
    height: int
    status: str
    last_committed_frame: int


@dataclass(frozen=True)
class NewDetection:
    """One tracked crop ready to commit; ``track_key`` is the tracker's id within the current run."""

    track_key: int
    frame_index: int
    time_s: float
    box: tuple[float, float, float, float]
    score: float
    quality: float
    crop_path: str
    feature: np.ndarray
    attributes: np.ndarray | None = None  # the crop's attribute probabilities, where the model has the head


@dataclass(frozen=True)
class DetectionRow:
    """A stored crop with what search results show about it."""

    id: int
    track_id: int
    video_id: int
    camera: str
    frame_index: int
    time_s: float
    wall_time: datetime | None
    box: tuple[float, float, float, float]
    score: float
    quality: float
    crop_path: str


@dataclass(frozen=True)
class TrackRow:
    id: int
    video_id: int
    camera: str
    first_frame: int
    last_frame: int
    first_time_s: float
    last_time_s: float
    first_seen: datetime | None
    last_seen: datetime | None
    num_crops: int


@dataclass(frozen=True)
class StoreSummary:
    cameras: int
    videos: int
    videos_done: int
    tracks: int
    detections: int
    model: ModelInfo | None


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 time; ``option`` names the flag in the error. Naive times are kept naive (and read as UTC)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO 8601 time; write e.g. 2024-05-01T09:30:00") from None


def epoch_seconds(moment: datetime) -> float:
    """Seconds since 1970 UTC; a naive time is taken as UTC so that naive start times and filters compare."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


def in_batches(ids: Iterable[int]) -> Iterator[tuple[list[int], str]]:
    """``ids`` in slices of at most 900, each with its ``(?,?,...)`` list: SQLite limits bound parameters."""
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), 900):
        part = ids[start : start + 900]
        yield part, "(" + ",".join("?" * len(part)) + ")"


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows (a zero row stays zero rather than becoming NaN)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


VIDEO_SELECT = (
    "SELECT v.id, c.name, v.path, v.fingerprint, v.start_frame, v.end_frame, v.every_n, v.detector, v.start_time, "
    "v.fps, v.width, v.height, v.status, v.last_committed_frame FROM videos v JOIN cameras c ON c.id = v.camera_id"
)
DETECTION_SELECT = (
    "SELECT d.id, d.track_id, d.video_id, c.name, d.frame_index, d.time_s, v.start_time, d.x0, d.y0, d.x1, d.y1, "
    "d.score, d.quality, d.crop_path FROM detections d JOIN videos v ON v.id = d.video_id "
    "JOIN cameras c ON c.id = v.camera_id"
)
TRACK_SELECT = (
    "SELECT t.id, t.video_id, c.name, t.first_frame, t.last_frame, t.first_time_s, t.last_time_s, v.start_time, "
    "t.num_crops FROM tracks t JOIN videos v ON v.id = t.video_id JOIN cameras c ON c.id = v.camera_id"
)


def video_row(row: Sequence[object]) -> VideoRecord:
    start = row[8]
    return VideoRecord(
        id=int(row[0]),  # type: ignore[arg-type]
        camera=str(row[1]),
        path=str(row[2]),
        fingerprint=str(row[3]),
        start_frame=int(row[4]),  # type: ignore[arg-type]
        end_frame=int(row[5]),  # type: ignore[arg-type]
        every_n=int(row[6]),  # type: ignore[arg-type]
        detector=str(row[7]),
        start_time=None if start is None else datetime.fromisoformat(str(start)),
        fps=float(row[9]),  # type: ignore[arg-type]
        width=int(row[10]),  # type: ignore[arg-type]
        height=int(row[11]),  # type: ignore[arg-type]
        status=str(row[12]),
        last_committed_frame=int(row[13]),  # type: ignore[arg-type]
    )


def wall_time(start_time: object, time_s: float) -> datetime | None:
    """``start_time`` (ISO text or None) plus ``time_s`` seconds into the video."""
    if start_time is None:
        return None
    return datetime.fromisoformat(str(start_time)) + timedelta(seconds=time_s)


def detection_row(row: Sequence[object]) -> DetectionRow:
    time_s = float(row[5])  # type: ignore[arg-type]
    return DetectionRow(
        id=int(row[0]),  # type: ignore[arg-type]
        track_id=int(row[1]),  # type: ignore[arg-type]
        video_id=int(row[2]),  # type: ignore[arg-type]
        camera=str(row[3]),
        frame_index=int(row[4]),  # type: ignore[arg-type]
        time_s=time_s,
        wall_time=wall_time(row[6], time_s),
        box=(float(row[7]), float(row[8]), float(row[9]), float(row[10])),  # type: ignore[arg-type]
        score=float(row[11]),  # type: ignore[arg-type]
        quality=float(row[12]),  # type: ignore[arg-type]
        crop_path=str(row[13]),
    )


def track_row(row: Sequence[object]) -> TrackRow:
    first_s, last_s = float(row[5]), float(row[6])  # type: ignore[arg-type]
    return TrackRow(
        id=int(row[0]),  # type: ignore[arg-type]
        video_id=int(row[1]),  # type: ignore[arg-type]
        camera=str(row[2]),
        first_frame=int(row[3]),  # type: ignore[arg-type]
        last_frame=int(row[4]),  # type: ignore[arg-type]
        first_time_s=first_s,
        last_time_s=last_s,
        first_seen=wall_time(row[7], first_s),
        last_seen=wall_time(row[7], last_s),
        num_crops=int(row[8]),  # type: ignore[arg-type]
    )


def track_time_key(track: TrackRow) -> tuple[int, float, float]:
    """Sorts tracks in time order: wall-clock first sighting where known; tracks of videos without a start time
    come after every timed one, by video and time into it."""
    if track.first_seen is not None:
        return (0, epoch_seconds(track.first_seen), 0.0)
    return (1, float(track.video_id), track.first_time_s)
