"""``reidkit ingest-many``: many videos (or long videos in segments) ingested by Ray workers into one store.

The ingest options are ``reidkit ingest``'s own (``cli.ingest_options.shared_ingest_options``); the work is
``reidkit.search.distributed_ingest.ingest_many``. Ray is imported only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.ingest_options import IngestFlags, shared_ingest_options
from reidkit.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("ingest-many")(ingest_many)


@shared_ingest_options
def ingest_many(
    videos: Annotated[list[str], typer.Argument(help="video files (the same paths must be readable on every worker)")],
    db: Annotated[Path, typer.Option("--db", help="store folder (created if missing); only this process writes it")],
    camera: Annotated[
        list[str] | None,
        typer.Option("--camera", help="camera per video, in order (repeat it), or one for all; default: file name"),
    ] = None,
    start_time: Annotated[
        list[str] | None, typer.Option("--start-time", help="ISO 8601 time of each video's frame 0, in order")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster to join, e.g. ray://head:10001 (default: local)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Ray workers, one CPU each")] = 2,
    segment_seconds: Annotated[
        float | None,
        typer.Option("--segment-seconds", help="cut videos into segments of about S seconds (tracks end at cuts)"),
    ] = None,
    max_retries: Annotated[int, typer.Option("--max-retries", help="reruns of a segment whose worker died")] = 3,
    *,
    flags: IngestFlags,
) -> None:
    """Ingest many videos with Ray workers (decode, detect, track, embed); this process alone writes the store."""
    from reidkit.inference.device import resolve_device
    from reidkit.search.distributed_ingest import RayClusterOptions, RayWorkers, VideoJob, WorkerSetup, check_jobs
    from reidkit.search.distributed_ingest import ingest_many as run
    from reidkit.search.ingest import check_options
    from reidkit.inference.model_choice import model_source, resolve_backend
    from reidkit.video.detector_choice import detector_source
    from reidkit.store.paths import discard_on_failure
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    cameras = _per_video(camera, videos, "--camera") or [Path(video).stem for video in videos]
    times = _per_video(start_time, videos, "--start-time", allow_one=False) or [None] * len(videos)
    jobs = []
    for video, name, time in zip(videos, cameras, times):
        jobs.append((video, flags.options(name, time)))
    cluster = RayClusterOptions(ray_address, workers, max_retries)
    cluster.check()
    if segment_seconds is not None and not segment_seconds > 0:
        raise ConfigError(f"--segment-seconds {segment_seconds} must be a positive number of seconds")
    device = str(resolve_device(flags.device, "--device"))
    backend = resolve_backend(flags.embed_backend, device)
    detector_name, detector_model = detector_source(flags.detector)
    video_jobs = []
    for video, options in jobs:
        info = probe_video(video)
        check_options(options, info)
        video_jobs.append(VideoJob(info, options))
    index, index_options = flags.vector_index()
    with discard_on_failure(db), Store.open(db, writable=True, create=True, index=index,
                                            index_options=index_options) as store:
        source = model_source(flags.checkpoint, store.model)
        check_jobs(store, video_jobs)  # a refused second ingest fails here, before Ray starts
        setup = WorkerSetup(source, detector_name, str(detector_model) if detector_model else None, device,
                            flags.batch_size, backend)
        with RayWorkers(setup, cluster) as ray_workers:
            report = run(store, video_jobs, ray_workers, segment_seconds, progress=not flags.quiet, echo=typer.echo)
        start_seconds = ray_workers.start_seconds
        summary = store.summary()
    for video in report.videos:
        for line in video.warnings:
            typer.echo(f"warning: {video.path}: {line}", err=True)
        resumed = f", resumed after frame {video.resumed_after}" if video.resumed_after is not None else ""
        typer.echo(
            f"ingested {video.path} as camera {video.camera!r} (video {video.video_id}): {video.frames} frames, "
            f"{video.detections} crops, {video.tracks} tracks{resumed}"
        )
    frames = sum(video.frames for video in report.videos)
    typer.echo(
        f"{report.segments} segments on {report.workers} Ray workers ({len(report.worker_processes)} worker "
        f"processes) in {report.seconds:.1f} s after {start_seconds:.1f} s starting them "
        f"({frames / max(report.seconds, 1e-9):.1f} processed frames/s) -> {db} "
        f"[store: {summary.videos} videos, {summary.tracks} tracks, {summary.detections} crops]"
    )


def _per_video(values: list[str] | None, videos: list[str], option: str, allow_one: bool = True) -> list[str]:
    """``values`` given once per video (in order), or (``allow_one``) once for all of them; [] when not given."""
    if not values:
        return []
    if len(values) == len(videos):
        return list(values)
    if allow_one and len(values) == 1:
        return list(values) * len(videos)
    one = " or once for all" if allow_one else ""
    raise ConfigError(f"{option} was given {len(values)} times for {len(videos)} videos: give it once per video{one}")
