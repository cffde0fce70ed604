"""Ingest many videos (or long videos cut into segments) with Ray workers, one writer committing to the store.

Roles:

- The driver (this process) plans: it checks every video as ``reidkit ingest`` would (``ingest.plan_ingest``:
  refused second ingests, bad options) before Ray starts, claims one video row per video (``ingest.begin_ingest``:
  resumes an interrupted run, single-machine or distributed), and cuts each video's frames still to do into
  segments (``segments.plan_segments``).
- Workers are Ray actors (``--workers N``), each building the detector and the ReID model once, then decoding,
  detecting, tracking and embedding whole segments (``segments.process_segment``) and returning plain data
  (detections, features, crops as JPEG bytes). They never touch the store, so a store needs no shared filesystem:
  only the videos and the model file must be readable at the same paths on every machine.
- The driver is the ONE writer: it commits each segment in one transaction, the segments of a video in order
  (results that arrive early wait in memory), so the store stays consistent and is never written by two processes.

A worker process that dies (killed, out of memory, its machine lost) is restarted by Ray and its segment is run
again (``max_retries``); the segment is committed once, because the writer commits only what it receives, and
``segments.commit_segment`` skips a segment the video's last committed frame already covers. When the driver itself
dies, the store holds whole segments only, and the same command (or ``reidkit ingest`` per video) resumes.

Ray is imported here only inside the functions, and is an optional extra (``pip install reidkit[ray]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidkit.errors import ConfigError, ReidkitError, VideoError
from reidkit.search.ingest import IngestOptions, IngestReport, begin_ingest, next_frame, plan_ingest
from reidkit.search.segments import Segment, SegmentResult, commit_segment, plan_segments, process_segment
from reidkit.store.rows import ModelInfo
from reidkit.store.writer import Store
from reidkit.video import VideoInfo


class WorkerLostError(ReidkitError):
    """A Ray worker died more often than ``max_retries`` allows, or could not start at all."""


@dataclass(frozen=True)
class VideoJob:
    """One video to ingest, with its own options (camera, start time, frame range)."""

    info: VideoInfo
    options: IngestOptions


@dataclass(frozen=True)
class WorkerSetup:
    """How every worker builds its models: decided once on the driver (``inference.model_choice.model_source`` and
    ``detector_source``), so that all workers embed with the same model and detect with the same detector."""

    model_source: str  # checkpoint path (absolute) or ``imagenet``
    detector: str
    detector_model: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    backend: str = "auto"


@dataclass(frozen=True)
class RayClusterOptions:
    """``address``: a Ray cluster (``ray://host:10001`` or ``host:6379``), None for a local Ray of ``workers`` CPUs.
    ``max_retries``: how often a worker that died is restarted and its segment run again."""

    address: str | None = None
    workers: int = 2
    max_retries: int = 3

    def check(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be 1 or more")
        if self.max_retries < 0:
            raise ConfigError(f"--max-retries {self.max_retries} must be 0 or more")


@dataclass
class ManyReport:
    videos: list[IngestReport]
    segments: int = 0  # committed in this run
    workers: int = 0
    worker_processes: list[str] = field(default_factory=list)  # every host:pid that returned a segment
    seconds: float = 0.0


class SegmentWorker:
    """The Ray actor (wrapped by ``ray.remote`` when used): models built once, then one segment per call."""

    def __init__(self, setup: WorkerSetup) -> None:
        from reidkit.inference.model_choice import choose_model
        from reidkit.video.detector_choice import choose_detector

        detector_model = Path(setup.detector_model) if setup.detector_model else None
        self.detector = choose_detector(setup.detector, setup.device, openvino_model=detector_model)
        choice = choose_model(setup.model_source, None, setup.device, setup.batch_size, setup.backend)
        self.extractor = choice.extractor

    def identity(self) -> tuple[str, int, str | None, str]:
        """``(model id, feature dimension, attribute schema or None, detector name)``: what the store records and
        checks."""
        schema = self.extractor.schema.name if self.extractor.schema is not None else None
        return self.extractor.model_id, self.extractor.feature_dim, schema, self.detector.name

    def run(
        self, segment: Segment, chunk_frames: int, jpeg_quality: int, kill_once_marker: str | None = None
    ) -> SegmentResult:
        """``kill_once_marker``: fault drill: the first worker to finish a chunk while this file does not exist
        creates it (writing its pid) and exits at once, mid-segment, as a killed process would."""
        after = (lambda: _die_once(kill_once_marker)) if kill_once_marker else None
        return process_segment(segment, self.extractor, self.detector, chunk_frames, jpeg_quality, after)


def _die_once(marker: str) -> None:
    try:
        handle = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    os.write(handle, str(os.getpid()).encode())
    os.close(handle)
    os._exit(1)  # no cleanup, no exception: what SIGKILL or the OOM killer leaves behind


class RayWorkers:
    """``cluster.workers`` Ray actors with their models loaded, on a local Ray or a cluster, reusable for several
    ``ingest_many`` calls (a long-lived driver pays the start-up once). A context manager: closing kills the actors,
    and shuts Ray down if this object started it."""

    def __init__(self, setup: WorkerSetup, cluster: RayClusterOptions) -> None:
        started = time.perf_counter()
        cluster.check()
        self.ray = _import_ray()
        self.setup, self.cluster = setup, cluster
        self._started_ray = connect(self.ray, cluster)
        self.actors: list[Any] = []
        try:
            actor = self.ray.remote(SegmentWorker).options(
                num_cpus=1, max_restarts=cluster.max_retries, max_task_retries=cluster.max_retries
            )
            self.actors = [actor.remote(setup) for _ in range(cluster.workers)]
            identities = _get(self.ray, [a.identity.remote() for a in self.actors], "starting the workers")
        except BaseException:
            self.close()
            raise
        model_id, feature_dim, schema, self.detector = identities[0]
        self.model = ModelInfo(model_id, feature_dim, setup.model_source, schema)
        self.start_seconds = time.perf_counter() - started

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self._started_ray:
            self.ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ingest_many(
    store: Store,
    jobs: Sequence[VideoJob],
    workers: RayWorkers,
    segment_seconds: float | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    kill_once_marker: str | None = None,
) -> ManyReport:
    """Ingest ``jobs`` into ``store`` (writable) with ``workers``, cutting videos into segments of about
    ``segment_seconds`` (None: whole videos); see the module docstring. ``kill_once_marker``: ``SegmentWorker.run``."""
    started = time.perf_counter()
    if segment_seconds is not None and not segment_seconds > 0:
        raise ConfigError(f"--segment-seconds {segment_seconds} must be a positive number of seconds")
    check_jobs(store, jobs)
    report = ManyReport([], workers=len(workers.actors))
    videos: list[int] = []
    segments: list[Segment] = []
    for job in jobs:
        video, video_report = begin_ingest(store, job.info, job.options, workers.model, workers.detector)
        videos.append(video.id)
        report.videos.append(video_report)
        length = round(segment_seconds * video.fps) if segment_seconds else None
        segments += plan_segments(video, next_frame(video), length)
    if echo is not None:
        echo(f"{len(segments)} segments of {len(jobs)} videos on {len(workers.actors)} Ray workers")
    _run_segments(workers, store, segments, jobs[0].options, report, progress, kill_once_marker)
    unusable = [problem for video_id in videos if (problem := _finish(store, video_id, report))]
    store.save_indexes()
    if unusable:
        raise VideoError("; ".join(unusable))
    report.seconds = time.perf_counter() - started
    return report


def check_jobs(store: Store, jobs: Sequence[VideoJob]) -> None:
    """Everything refusable is refused before Ray starts or a row is written: bad options, a second ingest of
    stored frames (``plan_ingest``), the same frames twice in one run."""
    if not jobs:
        raise ConfigError("give at least one VIDEO to ingest")
    seen: dict[tuple[str, int, int | None], str] = {}
    for job in jobs:
        plan_ingest(store, job.info, job.options)
        key = (job.info.fingerprint, job.options.start_frame, job.options.end_frame)
        if key in seen:
            raise ConfigError(f"{job.info.path} and {seen[key]} are the same video (same frames); give it once")
        seen[key] = job.info.path


def _run_segments(
    workers: RayWorkers,
    store: Store,
    segments: list[Segment],
    options: IngestOptions,
    report: ManyReport,
    progress: bool,
    kill_once_marker: str | None,
) -> None:
    """Hand the segments to the workers as they come free; commit results, each video's in segment order."""
    from ray.util import ActorPool
    from tqdm import tqdm

    pool = ActorPool(workers.actors)
    chunk_frames, quality = options.chunk_frames, options.jpeg_quality
    for segment in segments:
        pool.submit(lambda actor, s: actor.run.remote(s, chunk_frames, quality, kill_once_marker), segment)
    waiting: dict[tuple[int, int], SegmentResult] = {}
    next_index = {segment.video_id: 0 for segment in segments}
    by_video = {r.video_id: r for r in report.videos}
    last_save = time.monotonic()
    with tqdm(total=len(segments), desc="segments", unit="seg", disable=not progress) as bar:
        while pool.has_next():
            result: SegmentResult = _get(workers.ray, pool.get_next_unordered, "ingesting a segment")
            segment = result.segment
            waiting[(segment.video_id, segment.index)] = result
            while (segment.video_id, next_index[segment.video_id]) in waiting:
                ready = waiting.pop((segment.video_id, next_index[segment.video_id]))
                if commit_segment(store, ready):
                    report.segments += 1
                    _add(by_video[segment.video_id], ready)
                next_index[segment.video_id] += 1
                bar.update(1)
            if result.worker not in report.worker_processes:
                report.worker_processes.append(result.worker)
            if time.monotonic() - last_save >= options.save_every_s:
                store.save_indexes()
                last_save = time.monotonic()


def _add(video: IngestReport, result: SegmentResult) -> None:
    video.frames += result.frames
    video.detections += len(result.detections)
    video.tracks += result.tracks
    video.warnings += [w for w in result.warnings if w not in video.warnings]
    for stage, seconds in result.stage_seconds.items():
        video.stage_seconds[stage] = video.stage_seconds.get(stage, 0.0) + seconds
    if result.decode_error and video.frames == 0:
        video.warnings.append(result.decode_error)


def _finish(store: Store, video_id: int, report: ManyReport) -> str | None:
    """Mark a video done once all its segments are in. A video of which no frame decoded is removed instead, and
    the reason returned (refused, as ``reidkit ingest`` refuses it, once the other videos are done)."""
    if store.video(video_id).last_committed_frame >= 0:
        store.finish_video(video_id)
        return None
    video = next(r for r in report.videos if r.video_id == video_id)
    report.videos.remove(video)
    store.delete_video(video_id)
    return f"{video.path}: {video.warnings[-1] if video.warnings else 'no frame decoded'}"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "distributed ingest needs Ray: pip install 'reidkit[ray]' (or ingest one video at a time with "
            "`reidkit ingest`)"
        ) from None
    return ray


def connect(ray: Any, cluster: RayClusterOptions) -> bool:
    """Join the Ray cluster at ``cluster.address``, or start a local Ray with ``workers`` CPUs; True if this call
    started (and must shut down) Ray. A Ray this process already joined is used as it is."""
    if ray.is_initialized():
        return False
    try:
        if cluster.address:
            ray.init(address=cluster.address, logging_level="WARNING")
        else:
            # Ray starts its workers at niceness 15; here they ARE the ingest, and on a busy machine they would get
            # next to no CPU beside the ordinary processes (a single-machine ingest runs at 0). The variable set
            # by the user wins.
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=cluster.workers, include_dashboard=False, logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--ray-address {cluster.address}" if cluster.address else "a local Ray"
        raise ConfigError(f"cannot start or join {where}: {' '.join(str(exc).split())[:300]}") from None
    return True


def _get(ray: Any, what: Any, doing: str) -> Any:
    """``ray.get(what)`` (or ``what()`` when callable), with our own errors raised as themselves (one line in the
    CLI) and a worker that died for good as ``WorkerLostError``."""
    try:
        return what() if callable(what) else ray.get(what)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, ReidkitError):
            raise exc.cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        summary = " ".join(str(exc).split())[:300]
        raise WorkerLostError(
            f"a Ray worker died while {doing} ({summary}); the segments committed so far are kept: rerun the same "
            "command to resume"
        ) from None
