"""``reidkit watch``: cameras ingested live into a store until Ctrl-C or SIGTERM (the work: ``reidkit.live``).

The options that mean what they mean for ``reidkit ingest`` come from ``cli.ingest_options``; a stop (Ctrl-C,
SIGTERM) commits what is processed and closes every camera's row before the command exits.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reidkit.cli.ingest_options import BatchSizeOption, CheckpointOption, DetectorOption, DeviceOption, EveryOption
from reidkit.cli.options import EmbedBackendOption
from reidkit.errors import ConfigError

if TYPE_CHECKING:
    from reidkit.live.camera_db import CameraHealth
    from reidkit.search.retention import PurgeReport

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PROGRESS_EVERY_S = 5.0


def register(app: typer.Typer) -> None:
    """Add ``watch`` to the ``reidkit`` app."""
    app.command("watch")(watch)


def parse_duration(text: str, option: str = "--keep") -> float:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> seconds; ``ConfigError`` naming ``option`` otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{option} {text!r} must be a positive duration such as 7d, 12h, 30m or 90s")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def watch(
    db: Annotated[Path, typer.Option("--db", help="store folder (created if missing)")],
    camera: Annotated[
        list[str],
        typer.Option("--camera", help="NAME=URL: an rtsp:// or http(s):// stream, a /dev/video* device, or a video "
                     "file played at its real frame rate; repeat for more cameras"),
    ],
    keep: Annotated[
        str | None, typer.Option("--keep", help="retention: delete footage older than this, e.g. 7d, 12h, 30m")
    ] = None,
    commit_seconds: Annotated[
        float, typer.Option("--commit-seconds", help="footage per commit: the most a crash or kill -9 loses")
    ] = 1.5,
    detector: DetectorOption = None,
    checkpoint: CheckpointOption = None,
    every: EveryOption = 1,
    device: DeviceOption = "cpu",
    batch_size: BatchSizeOption = 64,
    embed_backend: EmbedBackendOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress lines")] = False,
) -> None:
    """Ingest live cameras into a person-search store, searchable while it grows; stop with Ctrl-C."""
    from reidkit.live.sources import parse_camera
    from reidkit.live.watcher import WatchOptions, watch_cameras

    cameras = [parse_camera(text) for text in camera]
    if batch_size < 1:
        raise ConfigError("--batch-size must be a positive integer")
    if commit_seconds <= 0:
        raise ConfigError("--commit-seconds must be a positive number of seconds")
    options = WatchOptions(
        every_n=every, commit_seconds=commit_seconds, keep_seconds=parse_duration(keep) if keep else None,
        detector=detector, checkpoint=checkpoint, device=device, batch_size=batch_size, embed_backend=embed_backend,
        on_purge=_Audited(db),
    )
    options.check()
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    names = ", ".join(f"{c.name} ({c.public_url})" for c in cameras)
    typer.echo(f"watching {names} -> {db}; Ctrl-C stops")
    from reidkit.live.listeners import watch_listeners

    with watch_listeners(db) as listeners:  # alerts, people linked online (docs/live.md)
        report = watch_cameras(db, cameras, options, listeners=listeners, stop=stop,
                               progress=None if quiet else _Progress())
    for cam in report.cameras:
        resumed = f", resumed after frame {cam.resumed_after}" if cam.resumed_after is not None else ""
        note = f" ({cam.note})" if cam.note else ""
        typer.echo(
            f"{cam.camera}: {cam.state}{note}; {cam.frames} frames, {cam.detections} crops, {cam.tracks} tracks in "
            f"{len(cam.sessions)} session(s) (video {', '.join(map(str, cam.sessions)) or '-'}), {cam.reconnects} "
            f"reconnects, {cam.frames_dropped} frames dropped{resumed}"
        )
    if report.purged_videos:
        typer.echo(f"retention: deleted {report.purged_videos} old videos")


class _Audited:
    """A retention purge written to the store's audit log, as ``reidkit purge`` writes its own (who: ``cli``)."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def __call__(self, report: PurgeReport) -> None:
        from reidkit.service.audit import purge_target, record_cli
        from reidkit.service.service_db import connect

        record_cli(connect(self.db), "purge", "watch --keep: " + purge_target(report))


class _Progress:
    """One line per camera every few seconds."""

    def __init__(self) -> None:
        self.printed = 0.0

    def __call__(self, healths: list[CameraHealth]) -> None:
        if time.monotonic() - self.printed < _PROGRESS_EVERY_S:
            return
        self.printed = time.monotonic()
        for health in healths:
            last = "-" if health.last_frame_epoch is None else datetime.fromtimestamp(
                health.last_frame_epoch, UTC).strftime("%H:%M:%S")
            lag = "-" if health.lag_s is None else f"{health.lag_s:.1f} s"
            typer.echo(f"{health.camera}: {health.state}, {health.fps:.1f} frames/s, lag {lag}, last frame {last} "
                       f"UTC, {health.reconnects} reconnects, {health.frames_dropped} dropped")
