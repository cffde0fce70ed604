"""``reidkit ingest``: one video into a person-search store (the work lives in ``reidkit.search.ingest``).

torch, FAISS and OpenVINO are imported inside the command so that ``reidkit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.ingest_options import IngestFlags, shared_ingest_options


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the ``reidkit`` app."""
    app.command("ingest")(ingest)


@shared_ingest_options
def ingest(
    video: Annotated[str, typer.Argument(help="video file (or a URL FFmpeg opens)")],
    camera: Annotated[str, typer.Option("--camera", help="camera name, shown in results and usable as a filter")],
    db: Annotated[Path, typer.Option("--db", help="store folder (created if missing)")],
    start_time: Annotated[
        str | None, typer.Option("--start-time", help="wall-clock time of the video's first frame, ISO 8601")
    ] = None,
    *,
    flags: IngestFlags,
) -> None:
    """Detect, track and embed the people in a video and add them to a person-search store (resumable)."""
    from reidkit.inference.device import resolve_device
    from reidkit.search.ingest import check_options, ingest_video, plan_ingest
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.paths import discard_on_failure
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    # Everything the user typed is checked before any store, row or model exists: a refused ingest changes nothing.
    options = flags.options(camera, start_time)
    device = str(resolve_device(flags.device, "--device"))
    info = probe_video(video)  # a missing or unreadable video fails here, before any store or model is touched
    check_options(options, info)
    # e.g. an unreadable checkpoint: a failed first ingest leaves no empty store behind (the folder's other files stay)
    index, index_options = flags.vector_index()
    with discard_on_failure(db), Store.open(db, writable=True, create=True, index=index,
                                            index_options=index_options) as store:
        plan_ingest(store, info, options)  # a refused second ingest fails here, before the model loads
        choice = choose_model(
            flags.checkpoint, store.model, device=device, batch_size=flags.batch_size, backend=flags.embed_backend
        )
        if choice.warning:
            typer.echo(f"warning: {choice.warning}", err=True)
        built = choose_detector(flags.detector, device)
        report = ingest_video(store, info, options, choice.extractor, built, choice.source)
        summary = store.summary()
    for line in report.warnings:
        typer.echo(f"warning: {line}", err=True)
    if report.resumed_after is not None:
        removed = report.orphan_crops_removed
        typer.echo(f"resumed after frame {report.resumed_after} (removed {removed} uncommitted crops)")
    if report.grown_from is not None:
        grown = f"{video} continues the recording ingested from {report.grown_from}"
        typer.echo(f"{grown}: video {report.video_id} resumed")
    if report.replaced:
        typer.echo(f"replaced earlier ingest(s): video {', '.join(map(str, report.replaced))}")
    typer.echo(
        f"ingested {video} as camera {report.camera!r} (video {report.video_id}): {report.frames} frames, "
        f"{report.detections} crops, {report.tracks} tracks in {report.seconds:.1f} s -> {db} "
        f"[store: {summary.videos} videos, {summary.tracks} tracks, {summary.detections} crops]"
    )
    typer.echo(report.stage_summary())
    if report.detections == 0 and report.resumed_after is None:
        typer.echo(
            f"warning: no person was detected in {video} ({report.frames} frames looked at); it is recorded as "
            "ingested, but nothing from it can be found by search",
            err=True,
        )
