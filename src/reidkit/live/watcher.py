"""``watch_cameras``: every camera ingested live into one store, by one process.

Each camera has a reader thread (``sources``) filling a bounded queue; ONE worker (the caller's thread) takes frames
from all the queues, detects people in all of them in one batch, tracks each camera's frames with its own tracker,
embeds every camera's crops in one batch, and hands each camera its share (``camera_ingest``), which commits a
segment every ~``commit_seconds`` of footage and then calls the listeners. Batching across cameras is what lets a few
streams share two cores (OpenVINO keeps several requests in flight, the embedder fills its batch); when the worker
still falls behind, the queues drop their oldest frames and count them, so lag stays bounded.

Retention (``keep_seconds``) runs the purge of ``reidkit purge`` in-process every ``purge_every_s``, sparing the
sessions being written; each camera's latest frame is saved as a JPEG every ``snapshot_every_s`` (zones and heat
maps are drawn on it); health rows are written every ``health_every_s``.
"""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from reidkit.atomic_file import write_atomic
from reidkit.errors import ConfigError
from reidkit.live.camera_db import CameraHealth, ensure_camera_tables, forget_gaps_before
from reidkit.live.camera_ingest import CameraIngest, CameraSettings, with_features
from reidkit.live.events import TrackListener
from reidkit.live.index_replan import IndexReplanner
from reidkit.live.live_db import open_live_db, snapshot_path
from reidkit.live.sources import CameraSource, FrameQueue, LiveFrame, ReadPlan, start_reader
from reidkit.search.ingest import Embedder, IngestReport
from reidkit.store.rows import ModelInfo, normalise_rows
from reidkit.store.writer import Store
from reidkit.video import Detector

if TYPE_CHECKING:
    from reidkit.search.retention import PurgeReport

_IDLE_WAIT_S = 0.2


@dataclass(frozen=True)
class WatchOptions:
    """How cameras are watched. The model fields mean what ``reidkit ingest``'s options of the same name mean."""

    every_n: int = 1  # ingest every n-th frame of each camera
    commit_seconds: float = 1.5  # footage per commit: the most a crash or kill -9 loses
    batch_frames: int = 16  # frames detected in one batch, across cameras
    queue_seconds: float = 3.0  # footage a camera's queue holds before its oldest frames are dropped
    backoff_initial_s: float = 1.0  # first wait before reconnecting; doubles up to backoff_max_s
    backoff_max_s: float = 30.0
    keep_seconds: float | None = None  # retention: footage older than this is purged (None: kept)
    purge_every_s: float = 60.0
    snapshot_every_s: float = 2.0
    health_every_s: float = 1.0
    save_every_s: float = 30.0  # vector indexes written to disk
    jpeg_quality: int = 90
    detector: str | None = None  # None: OpenVINO when its model is found, else HOG
    checkpoint: str | None = None  # None: the store's model, else the shipped default
    device: str = "cpu"
    batch_size: int = 64
    embed_backend: str | None = "auto"
    # Told of every retention purge that deleted something (the CLI writes it to the store's audit log, as
    # ``reidkit purge`` does); called in the worker thread.
    on_purge: Callable[[PurgeReport], None] | None = None

    def check(self) -> None:
        if self.every_n < 1:
            raise ConfigError("--every must be a positive integer")
        if self.commit_seconds <= 0 or self.batch_frames < 1 or self.queue_seconds <= 0:
            raise ConfigError("--commit-seconds, the batch size and the queue length must be positive")
        if self.keep_seconds is not None and self.keep_seconds <= 0:
            raise ConfigError("--keep must be a positive duration, e.g. 7d, 12h or 30m")


@dataclass(frozen=True)
class WatchModels:
    """A detector and an embedder already loaded (the service and tests reuse theirs); ``source`` is what the
    store records as the model (``inference.model_choice.ModelChoice.source``)."""

    detector: Detector
    embedder: Embedder
    source: str


@dataclass
class CameraReport:
    camera: str
    source: str
    sessions: list[int]  # store video ids, one per connection
    frames: int  # frames committed
    detections: int
    tracks: int
    reconnects: int
    frames_dropped: int
    state: str
    resumed_after: int | None = None  # a file camera: the last frame committed by an earlier, killed run
    note: str | None = None  # why a camera did nothing, or the error that ended it


@dataclass
class WatchReport:
    cameras: list[CameraReport] = field(default_factory=list)
    purged_videos: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # the worker's: detect, track, embed, write


def watch_cameras(
    store_root: Path,
    cameras: Sequence[CameraSource],
    options: WatchOptions = WatchOptions(),
    listeners: Sequence[TrackListener] = (),
    stop: threading.Event | None = None,
    progress: Callable[[list[CameraHealth]], None] | None = None,
    models: WatchModels | None = None,
) -> WatchReport:
    """Ingest ``cameras`` live into the store at ``store_root`` (created when missing) until ``stop`` is set or
    every camera has finished (only files finish on their own). Holds the store's writer lock while it runs.

    ``listeners`` are called after each commit with its tracks; ``progress`` every ``health_every_s`` with every
    camera's health. Bad options and duplicate camera names raise ``ConfigError`` before anything opens."""
    options.check()
    names = [camera.name for camera in cameras]
    if len(set(names)) != len(names) or not names:
        raise ConfigError("--camera: give each camera once, with a name of its own")
    stop = stop or threading.Event()
    started = time.monotonic()
    with Store.open(Path(store_root), writable=True, create=True) as store:
        models = models or load_models(options, store.model)
        schema = models.embedder.schema.name if models.embedder.schema is not None else None
        model = ModelInfo(models.embedder.model_id, models.embedder.feature_dim, models.source, schema)
        store.require_model(model.model_id, model.feature_dim, model.source)
        if schema is not None:
            store.require_attributes(schema)
        live = open_live_db(store.root)
        ensure_camera_tables(live)
        run = _Watch(store, live, cameras, options, models, model, listeners)
        try:
            run.loop(stop, progress)
        finally:
            run.close()
            live.close()
    run.report.seconds = time.monotonic() - started
    return run.report


def load_models(options: WatchOptions, held: ModelInfo | None) -> WatchModels:
    """The detector and embedder ``options`` name, as ``reidkit ingest`` picks them (``held``: the store's model)."""
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector

    choice = choose_model(options.checkpoint, held, device=options.device, batch_size=options.batch_size,
                          backend=options.embed_backend)
    return WatchModels(choose_detector(options.detector, options.device), choice.extractor, choice.source)


class _Watch:
    """The worker's state: the cameras, their readers, the timers of the periodic chores."""

    def __init__(self, store: Store, live: sqlite3.Connection, cameras: Sequence[CameraSource], options: WatchOptions,
                 models: WatchModels, model: ModelInfo, listeners: Sequence[TrackListener]) -> None:
        self.store, self.live, self.options, self.models = store, live, options, models
        self.wake = threading.Event()
        self.readers_stop = threading.Event()
        self.report = WatchReport()
        self.stages = IngestReport(0, "", "")  # the worker's seconds per stage; commits are timed per camera
        self.readers: list[threading.Thread] = []
        self.cameras: list[CameraIngest] = []
        detector = models.detector.name
        for source in cameras:
            settings = CameraSettings(source.every_n or options.every_n, options.commit_seconds,
                                      options.jpeg_quality, detector, model)
            queue = FrameQueue(options.queue_seconds, self.wake)
            self.cameras.append(CameraIngest(store, live, source, settings, queue, listeners))
        for camera in self.cameras:
            plan = camera.prepare()
            camera.write_health()
            if camera.video is not None:  # a file: its rate is known now (a stream's when it connects)
                camera.queue.set_rate(camera.video.fps / camera.settings.every_n)
            if plan is not None:
                plan = ReadPlan(plan.every_n, plan.start_frame, options.backoff_initial_s, options.backoff_max_s)
                self.readers.append(start_reader(camera.source, plan, camera.queue, self.readers_stop))
        self.replanner = IndexReplanner(store)
        now = time.monotonic()
        self.last = {"health": now, "snapshot": now - options.snapshot_every_s, "save": now, "purge": 0.0}

    def loop(self, stop: threading.Event, progress: Callable[[list[CameraHealth]], None] | None) -> None:
        while not stop.is_set() and not all(camera.finished for camera in self.cameras):
            self.wake.clear()
            batch = self._gather()
            if batch:
                self._process(batch)
            for camera in self.cameras:
                if camera.commit_due():
                    camera.commit()
            self._chores(progress)
            if not batch:
                self.wake.wait(_IDLE_WAIT_S)

    def _gather(self) -> list[tuple[CameraIngest, list[LiveFrame]]]:
        """Each camera's queued events handled, and up to its share of ``batch_frames`` frames taken."""
        active = [camera for camera in self.cameras if not camera.finished]
        share = max(1, self.options.batch_frames // max(1, len(active)))
        batch = []
        for camera in active:
            while True:
                frames, event = camera.queue.take(share)
                if event is None:
                    break
                camera.handle(event)
            if frames and camera.video is not None:
                batch.append((camera, frames))
        return batch

    def _process(self, batch: list[tuple[CameraIngest, list[LiveFrame]]]) -> None:
        """Detect every frame of the batch at once, track per camera, embed every crop at once, hand them back."""
        images = [live.frame.image for _, frames in batch for live in frames]
        with self.stages.timing("detect"):
            detected = self.models.detector.detect_batch(images)
        tracked, offset = [], 0
        with self.stages.timing("track"):
            for camera, frames in batch:
                tracked.append(camera.track(frames, detected[offset:offset + len(frames)]))
                offset += len(frames)
        crops = [crop for pending in tracked for _, crop in pending]
        with self.stages.timing("embed"):
            features, attributes = self.models.embedder.extract(crops) if crops else (None, None)
            features = None if features is None else normalise_rows(features)
        offset = 0
        for (camera, frames), pending in zip(batch, tracked):
            detections = with_features(pending, features, attributes, offset)
            camera.add(frames, detections, [crop for _, crop in pending])
            offset += len(pending)

    def _chores(self, progress: Callable[[list[CameraHealth]], None] | None) -> None:
        now, options = time.monotonic(), self.options
        if now - self.last["health"] >= options.health_every_s:
            for camera in self.cameras:
                camera.write_health()
            if progress is not None:
                progress([camera.health for camera in self.cameras])
            self.last["health"] = now
        if now - self.last["snapshot"] >= options.snapshot_every_s:
            for camera in self.cameras:
                save_snapshot(self.store.root, camera)
            self.last["snapshot"] = now
        if now - self.last["save"] >= options.save_every_s:
            self.replanner.tick()
            self.store.save_indexes(replan=False)  # an outgrown index is re-planned by the replanner
            self.last["save"] = now
        if options.keep_seconds is not None and now - self.last["purge"] >= options.purge_every_s:
            self.report.purged_videos += self.purge(time.time() - options.keep_seconds)
            self.last["purge"] = now

    def purge(self, before_epoch: float) -> int:
        """Delete footage that ended before ``before_epoch``, as ``reidkit purge`` does; the open sessions stay."""
        from reidkit.search.retention import purge_before

        open_sessions = {camera.video.id for camera in self.cameras if camera.video is not None}
        report = purge_before(self.store, datetime.fromtimestamp(before_epoch, UTC), spare=open_sessions)
        forget_gaps_before(self.live, before_epoch)
        if report.videos and self.options.on_purge is not None:
            self.options.on_purge(report)
        return len(report.videos)

    def close(self) -> None:
        self.readers_stop.set()
        for reader in self.readers:
            reader.join(timeout=15)
        for camera in self.cameras:
            camera.close()
            save_snapshot(self.store.root, camera)
            health = camera.health
            self.report.cameras.append(CameraReport(
                camera.source.name, camera.source.public_url, camera.sessions, camera.report.frames,
                camera.report.detections, camera.report.tracks, health.reconnects, camera.queue.dropped,
                health.state, camera.report.resumed_after, camera.note or health.error,
            ))
        self.replanner.close()
        self.store.save_indexes(replan=False)  # an index outgrown since is re-planned by the next writer
        written = sum(camera.report.stage_seconds["write"] for camera in self.cameras)
        self.report.stage_seconds = {**self.stages.stage_seconds, "write": written}
        del self.report.stage_seconds["decode"]  # in the cameras' reader threads, beside the worker


def save_snapshot(store_root: Path, camera: CameraIngest) -> None:
    """The camera's latest ingested frame as ``live_db.snapshot_path`` (JPEG, replaced atomically)."""
    image: np.ndarray | None = camera.latest_image
    if image is None:
        return
    path = snapshot_path(store_root, camera.source.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=camera.settings.jpeg_quality)
    write_atomic(path, buffer.getvalue())
    camera.latest_image = None  # written; the next one comes with the next frame
