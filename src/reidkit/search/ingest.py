"""Video in, searchable people out: decode -> detect -> track -> crop -> embed -> store, in resumable chunks.

Every ``chunk_frames`` sampled frames become one SQLite transaction that also records the last frame it covers,
so a killed ingest resumes right after the last whole chunk: crop files written past it are deleted, the vector
indexes are reconciled with SQLite on open, and decoding restarts on the same every-n-th-frame grid. The tracker
cannot be resumed, so a person walking through the resume point gets two tracks (two gallery entries); search
still finds both.

A video is identified by its content fingerprint plus frame range: ingesting the same range again is refused
(``force=True`` replaces it), while disjoint ranges of one file (the demo's two "cameras") are separate videos.
A recording ingested while it was still being written, and again once it grew, is one video: every committed
frame's pixel digest is stored, a new file whose frame 0 matches a stored video's is decoded on that video's frame
grid and compared, and a file that repeats all of the stored frames and goes on resumes that video after its last
committed frame (a file that is only a shorter copy is refused as already stored).

Options are checked (``check_options``) before anything is created, so a refused ingest leaves no row behind.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from reidkit.attribute_schema import AttributeSchema
from reidkit.errors import ConfigError, StoreError, VideoError
from reidkit.store.layout import crop_path
from reidkit.store.rows import ModelInfo, NewDetection, VideoRecord, normalise_rows
from reidkit.store.writer import Store
from reidkit.video import (
    ByteTracker,
    Detector,
    Frame,
    TruncatedVideoWarning,
    VideoInfo,
    crop_person,
    crop_quality,
    frame_digest,
    iter_frames,
)

_T = TypeVar("_T")
OPEN_END = 2**62  # end frame of a video whose length the container does not tell
STAGES = ("decode", "detect", "track", "embed", "write")
_NO_FEATURE_YET = np.zeros(0, dtype=np.float32)


class Embedder(Protocol):
    """What ingest needs from ``reidkit.inference.FeatureExtractor``: features, and where the model has an
    attribute head (``schema`` not None) the crops' attribute probabilities from the same pass (``extract``)."""

    @property
    def model_id(self) -> str: ...

    @property
    def feature_dim(self) -> int: ...

    schema: AttributeSchema | None

    def extract(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]: ...


@dataclass(frozen=True)
class IngestWording:
    """How refusals name the options and what to do, for the caller who reads them: the command line's flags by
    default, the HTTP API's form fields and routes from the service (``service.jobs``)."""

    every: str = "--every"
    chunk_frames: str = "--chunk-frames"
    start_frame: str = "--start-frame"
    end_frame: str = "--end-frame"
    camera: str = "--camera"
    rerun: str = "rerun with"
    replace: str = "add --force to replace it"
    start_over: str = "add --force to start over"


@dataclass(frozen=True)
class IngestOptions:
    camera: str
    start_time: datetime | None = None
    every_n: int = 1
    start_frame: int = 0
    end_frame: int | None = None
    force: bool = False
    chunk_frames: int = 20  # sampled frames per transaction: the most work a crash can lose
    save_every_s: float = 60.0  # how often the vector indexes are written while ingesting
    jpeg_quality: int = 90
    progress: bool = True
    wording: IngestWording = IngestWording()


@dataclass
class IngestReport:
    video_id: int
    camera: str
    path: str
    frames: int = 0  # sampled frames processed in this run
    detections: int = 0  # tracked crops stored in this run
    tracks: int = 0  # tracks started in this run
    resumed_after: int | None = None  # last committed frame of an interrupted earlier run
    replaced: list[int] = field(default_factory=list)  # video ids removed by --force
    grown_from: str | None = None  # the shorter file of the same recording this run continued
    orphan_crops_removed: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # Wall seconds per stage: decode, detect, track (incl. cropping), embed, write (JPEGs + SQLite commit).
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def stage_summary(self) -> str:
        """``processed frames/s; seconds per stage: decode 1.2, ...`` for the command line."""
        rate = self.frames / self.seconds if self.seconds else 0.0
        stages = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.stage_seconds.items())
        return f"{rate:.1f} processed frames/s; seconds per stage: {stages}"

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] += time.perf_counter() - started


def ingest_video(
    store: Store,
    info: VideoInfo,
    options: IngestOptions,
    extractor: Embedder,
    detector: Detector,
    model_source: str,
    on_commit: Callable[[VideoRecord, int], None] | None = None,
) -> IngestReport:
    """Ingest the video ``info`` describes (``reidkit.video.probe_video``) into ``store`` (writable), resuming an
    interrupted run of the same video and frame range.

    ``on_commit(video, last_frame)`` is called once the video row is claimed (``last_frame`` -1 when nothing is
    committed yet) and after every committed chunk: how a caller (the service's ingest jobs) reports progress."""
    started = time.perf_counter()
    schema = extractor.schema.name if extractor.schema is not None else None
    model = ModelInfo(extractor.model_id, extractor.feature_dim, model_source, schema)
    video, report = begin_ingest(store, info, options, model, detector.name)
    if on_commit is not None:
        on_commit(video, video.last_committed_frame)
    first = next_frame(video)
    if first < video.end_frame:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TruncatedVideoWarning)
            _run(store, video, first, options, extractor, detector, report, on_commit)
        report.warnings += [str(w.message) for w in caught if issubclass(w.category, TruncatedVideoWarning)]
    store.finish_video(video.id)
    store.save_indexes()
    report.seconds = time.perf_counter() - started
    return report


def begin_ingest(
    store: Store, info: VideoInfo, options: IngestOptions, model: ModelInfo, detector: str
) -> tuple[VideoRecord, IngestReport]:
    """Plan, adopt ``model``, and claim the video row (a new one, or the interrupted run to resume, whose
    uncommitted crop files are swept): everything before the first frame is decoded, shared with the distributed
    ingest's driver (``search.distributed_ingest``)."""
    plan = plan_ingest(store, info, options)
    store.require_model(model.model_id, model.feature_dim, model.source)
    if model.attribute_schema is not None:
        store.require_attributes(model.attribute_schema)
    grown_from = plan.resume.path if plan.grown and plan.resume is not None else None
    video = _claim_video(store, info, plan, options, detector)
    report = IngestReport(
        video.id, video.camera, info.path, replaced=[v.id for v in plan.replace], grown_from=grown_from
    )
    if video.last_committed_frame >= 0:
        report.resumed_after = video.last_committed_frame
    report.orphan_crops_removed = store.remove_orphan_crops(video)
    return video, report


def next_frame(video: VideoRecord) -> int:
    """The first frame of ``video`` still to ingest: its start, or the next grid frame after the last commit."""
    return video.start_frame if video.last_committed_frame < 0 else video.last_committed_frame + video.every_n


@dataclass(frozen=True)
class IngestPlan:
    """What an ingest will do: resume ``resume`` (an interrupted run of the same job, or with ``grown`` an earlier
    ingest of a shorter copy of this recording), after removing ``replace`` (earlier ingests of overlapping frames,
    only with ``force``)."""

    end_frame: int
    resume: VideoRecord | None
    replace: tuple[VideoRecord, ...]
    grown: bool = False


def check_options(options: IngestOptions, info: VideoInfo | None = None) -> None:
    """Refuse (``ConfigError`` naming the option) what could only make an empty, stuck or unreadable record: a
    negative or empty frame range, a start past the video's end, a camera name that cannot be shown on one line."""
    words = options.wording
    if options.every_n < 1 or options.chunk_frames < 1:
        raise ConfigError(f"{words.every} and {words.chunk_frames} must be positive integers")
    check_camera_name(options.camera, words.camera)
    start, end = options.start_frame, options.end_frame
    if start < 0:
        raise ConfigError(f"{words.start_frame} {start} must be 0 or more (frames count from 0)")
    if end is not None and end <= start:
        raise ConfigError(f"{words.end_frame} {end} must be greater than {words.start_frame} {start}: the range "
                          "holds no frame")
    if info is not None and "://" not in info.path and 0 < info.num_frames <= start:
        raise ConfigError(f"{words.start_frame} {start} is past the end of {info.path} ({info.num_frames} frames)")


def check_camera_name(camera: str, option: str = "--camera") -> None:
    """A camera name is shown in tables, pages and filters: it must be non-empty and on one printable line."""
    if not camera.strip():
        raise ConfigError(f"{option} must name the camera, e.g. {option} entrance")
    bad = [c for c in camera if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise ConfigError(
            f"{option} {camera!r} contains control character(s) {', '.join(repr(c) for c in bad[:3])}; "
            "use printable characters only"
        )


def plan_ingest(store: Store, info: VideoInfo, options: IngestOptions) -> IngestPlan:
    """Decide between a fresh ingest, a resume and a refusal, before any model is loaded or row written.

    Refuses (``ConfigError``) bad options, and (``StoreError``) a second ingest of frames already in the store,
    from this file or from another copy of the same recording, unless ``options.force``.
    """
    check_options(options, info)
    end_frame = options.end_frame if options.end_frame is not None else (info.num_frames or OPEN_END)
    overlapping = [
        v for v in store.videos(info.fingerprint) if v.start_frame < end_frame and options.start_frame < v.end_frame
    ]
    copies = _copies_of_recording(store, info, options.start_frame, end_frame)
    words = options.wording
    if options.force:
        return IngestPlan(end_frame, None, tuple(overlapping) + tuple(video for video, _ in copies))
    for video in overlapping:
        job = (options.start_frame, end_frame, options.every_n)
        same_job = (video.start_frame, video.end_frame, video.every_n) == job
        if video.status == "ingesting" and same_job:
            if video.camera != options.camera:
                raise StoreError(
                    f"{info.path} was being ingested as camera {video.camera!r}, not {options.camera!r}; {words.rerun} "
                    f"{words.camera} {video.camera} to resume, or {words.start_over}"
                )
            return IngestPlan(end_frame, video, ())
        if video.status == "ingesting":
            raise StoreError(
                f"{info.path} was partly ingested (video {video.id}) with {words.start_frame} {video.start_frame} "
                f"{words.end_frame} {video.end_frame} {words.every} {video.every_n}; {words.rerun} those options to "
                f"resume, or {words.start_over}"
            )
        raise StoreError(
            f"{info.path} (frames {video.start_frame}-{video.end_frame}) is already in store {store.root} as video "
            f"{video.id}, camera {video.camera!r}; {words.replace}"
        )
    for video, grown in copies:
        last = video.last_committed_frame
        if not grown or end_frame <= last + video.every_n:
            raise StoreError(
                f"the frames of {info.path} are already in store {store.root}: it repeats the recording ingested as "
                f"video {video.id}, camera {video.camera!r} (frames {video.start_frame}-{last} of {video.path}); "
                f"{words.replace}"
            )
        if (video.camera, video.start_frame, video.every_n) != (options.camera, options.start_frame, options.every_n):
            raise StoreError(
                f"{info.path} continues the recording ingested as video {video.id} (camera {video.camera!r}, frames "
                f"{video.start_frame}-{last} of {video.path}); {words.rerun} {words.camera} {video.camera} "
                f"{words.start_frame} {video.start_frame} {words.every} {video.every_n} to resume it, or {words.replace}"
            )
        return IngestPlan(end_frame, video, (), grown=True)
    return IngestPlan(end_frame, None, ())


def _copies_of_recording(
    store: Store, info: VideoInfo, start_frame: int, end_frame: int
) -> list[tuple[VideoRecord, bool]]:
    """Stored videos of other files whose committed frames this file repeats in ``[start_frame, end_frame)``, each
    with whether this file goes on past them (a grown recording) rather than ending within them (a shorter copy).

    Candidates share frame 0's digest; this file is then decoded on the candidate's frame grid up to its last
    committed frame, and every digest must match, at least one past frame 0 (many recordings open on black)."""
    if info.head_digest is None:
        return []
    found = []
    for video in store.recordings_starting_with(info.head_digest):
        last = video.last_committed_frame
        overlaps = start_frame <= last and video.start_frame < end_frame
        if video.fingerprint == info.fingerprint or last < 0 or not overlaps:
            continue
        stored = store.frame_digests(video.id)
        compared, reached = 0, -1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedVideoWarning)
            try:
                for frame in iter_frames(info.path, video.every_n, video.start_frame, last + 1, progress=False):
                    reached = frame.index
                    expected = stored.get(frame.index)
                    if expected is None:
                        continue
                    if expected != frame_digest(frame.image):
                        compared = -1
                        break
                    compared += frame.index > 0
            except VideoError:
                continue
        if compared > 0:
            found.append((video, reached >= last))
    return found


def _claim_video(
    store: Store, info: VideoInfo, plan: IngestPlan, options: IngestOptions, detector: str
) -> VideoRecord:
    """The video row to ingest into: the interrupted run of this job, or a new row once ``plan.replace`` is gone."""
    if plan.resume is not None and plan.grown:
        return store.extend_video(plan.resume.id, _stored_path(info), info.fingerprint, plan.end_frame)
    if plan.resume is not None:
        return plan.resume
    for video in plan.replace:
        store.delete_video(video.id)
    return store.add_video(
        camera=options.camera,
        path=_stored_path(info),
        fingerprint=info.fingerprint,
        start_frame=options.start_frame,
        end_frame=plan.end_frame,
        every_n=options.every_n,
        detector=detector,
        start_time=options.start_time,
        fps=info.fps,
        width=info.width,
        height=info.height,
        head_digest=info.head_digest,
    )


def _stored_path(info: VideoInfo) -> str:
    """The video's path as the store keeps it: absolute, so that an ingest resumes from any folder."""
    return info.path if "://" in info.path else str(Path(info.path).resolve())


def _run(
    store: Store,
    video: VideoRecord,
    first: int,
    options: IngestOptions,
    extractor: Embedder,
    detector: Detector,
    report: IngestReport,
    on_commit: Callable[[VideoRecord, int], None] | None,
) -> None:
    """Commit every chunk ``process_chunks`` makes of the video from frame ``first`` on, one transaction each."""
    track_rows: dict[int, int] = {}
    last_save = time.monotonic()
    end = None if video.end_frame >= OPEN_END else video.end_frame
    try:
        frames = iter_frames(video.path, options.every_n, first, end, progress=options.progress)
    except VideoError:
        _drop_if_empty(store, video.id)  # the file went away since it was probed
        raise
    try:
        chunks = process_chunks(frames, video.id, video.fps, options.chunk_frames, extractor, detector, report)
        with closing(chunks):  # a failed commit stops the decoding thread at once
            for chunk in chunks:
                commit_processed(store, video.id, chunk, track_rows, options.jpeg_quality, report)
                report.frames += chunk.frames
                if on_commit is not None:
                    on_commit(video, chunk.last_frame)
                if time.monotonic() - last_save >= options.save_every_s:
                    store.save_indexes()
                    last_save = time.monotonic()
    except VideoError:
        # Raised only when no frame at all decoded in [first, end): for a fresh ingest the video is unusable; for a
        # resume, the last commit already reached the real end of a video whose length was unknown or estimated.
        if _drop_if_empty(store, video.id):
            raise


@dataclass
class ProcessedChunk:
    """A chunk of frames detected, tracked and embedded, ready to be written: ``detections`` (features filled in)
    with their ``crops`` (RGB arrays, in the same order), and every frame's pixel digest."""

    frames: int
    last_frame: int
    detections: list[NewDetection]
    crops: list[np.ndarray]
    digests: dict[int, str]


def process_chunks(
    frames: Iterable[Frame],
    video_id: int,
    fps: float,
    chunk_frames: int,
    extractor: Embedder,
    detector: Detector,
    report: IngestReport,
) -> Generator[ProcessedChunk, None, None]:
    """Decode and detect chunks in a background thread; here, track each chunk in order (one tracker for all of
    ``frames``) and embed it. Writing is the caller's: ``_run`` commits each chunk, a distributed worker
    (``search.segments``) hands its segment's chunks to the one writer."""
    tracker = ByteTracker(frame_rate=fps)
    for chunk, detected in _in_background(_detected_chunks(frames, detector, chunk_frames, report)):
        with report.timing("track"):
            pending = track_chunk(chunk, detected, tracker, video_id)
            digests = {frame.index: frame_digest(frame.image) for frame in chunk}
        with report.timing("embed"):
            features, attributes = extractor.extract([crop for _, crop in pending]) if pending else (None, None)
            features = None if features is None else normalise_rows(features)
        detections = [
            replace(detection, feature=features[i],
                    attributes=None if attributes is None else attributes[i])
            for i, (detection, _) in enumerate(pending)
        ]
        yield ProcessedChunk(len(chunk), chunk[-1].index, detections, [crop for _, crop in pending], digests)


def _detected_chunks(
    frames: Iterable[Frame], detector: Detector, chunk_frames: int, report: IngestReport
) -> Generator[tuple[list[Frame], list[np.ndarray]], None, None]:
    """Chunks of ``chunk_frames`` frames with their detections; the last chunk may be shorter.

    All of a chunk's frames go to ``detect_batch`` at once, which keeps several inference requests in flight
    (~40 % less CPU per frame than one at a time with OpenVINO).
    """
    iterator = iter(frames)
    while True:
        chunk: list[Frame] = []
        with report.timing("decode"):
            for frame in iterator:
                chunk.append(frame)
                if len(chunk) == chunk_frames:
                    break
        if not chunk:
            return
        with report.timing("detect"):
            detected = detector.detect_batch([f.image for f in chunk])
        yield chunk, detected
        if len(chunk) < chunk_frames:
            return


def _in_background(items: Generator[_T, None, None]) -> Iterator[_T]:
    """``items``, produced one step ahead by a thread, so that decoding and detecting the next chunk overlaps
    embedding and committing this one (PyAV, OpenVINO and PyTorch all release the GIL while they compute).

    The producer's exception is raised here, in order; leaving the loop early stops the producer.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(message: tuple[str, Any]) -> bool:
        """Hand ``message`` over unless the consumer has left (then a blocking put would never return)."""
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            offer(("error", exc))
        finally:
            items.close()  # closes the video container in the thread that used it

    worker = threading.Thread(target=produce, name="ingest-decode-detect", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        worker.join()


def _drop_if_empty(store: Store, video_id: int) -> bool:
    """Delete a video row that never committed a chunk (no stub left behind); True if it was deleted."""
    if store.video(video_id).last_committed_frame >= 0:
        return False
    store.delete_video(video_id)
    return True


def track_chunk(
    chunk: list[Frame], detected: Sequence[np.ndarray], tracker: ByteTracker, video_id: int
) -> list[tuple[NewDetection, np.ndarray]]:
    """The chunk's tracked boxes in frame order, each with its crop; features are filled in after embedding (also
    the live ingest's tracking step, ``reidkit.live``)."""
    pending: list[tuple[NewDetection, np.ndarray]] = []
    for frame, detections in zip(chunk, detected):
        for slot, tracked in enumerate(tracker.update(detections, frame.index)):
            detection = NewDetection(
                track_key=tracked.track_id,
                frame_index=frame.index,
                time_s=frame.time_s,
                box=tuple(float(v) for v in tracked.box),  # type: ignore[arg-type]
                score=float(tracked.score),
                quality=crop_quality(tracked.box, tracked.score, frame.image.shape),
                crop_path=crop_path(video_id, frame.index, slot),
                feature=_NO_FEATURE_YET,
            )
            pending.append((detection, crop_person(frame.image, tracked.box)))
    return pending


def commit_processed(
    store: Store,
    video_id: int,
    chunk: ProcessedChunk,
    track_rows: dict[int, int],
    jpeg_quality: int,
    report: IngestReport,
) -> None:
    """Write the chunk's JPEGs, then commit the chunk (files first: see the module docstring); the live ingest
    (``reidkit.live``) commits its segments through here too."""
    with report.timing("write"):
        folder = store.crop_folder(video_id)
        for detection, crop in zip(chunk.detections, chunk.crops):
            write_crop(store.root / detection.crop_path, encode_jpeg(crop, jpeg_quality), folder)
        known = len(track_rows)
        store.commit_chunk(video_id, chunk.detections, chunk.last_frame, track_rows, chunk.digests)
    report.detections += len(chunk.detections)
    report.tracks += len(track_rows) - known


def encode_jpeg(crop: np.ndarray, quality: int) -> bytes:
    """A crop as JPEG bytes: what a crop file holds, and what a distributed worker sends to the writer."""
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_crop(path: Path, data: bytes, folder: Path) -> None:
    """Write to a hidden temporary, fsync, rename: a crop file is either whole or absent."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StoreError(
            f"cannot write crop {path} ({exc.strerror or exc}); free disk space and rerun the same command: "
            "ingest resumes after the last committed chunk"
        ) from exc
