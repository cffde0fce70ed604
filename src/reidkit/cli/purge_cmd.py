"""``reidkit purge``: delete the footage-derived data of a store that is older than a date (``search.retention``).

Written to the store's audit log (``service.audit``, who: ``cli``) as the service's purge is: deleting footage is
something an auditor must be able to see, whoever did it and however.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``purge`` to the ``reidkit`` app."""
    app.command("purge")(purge)


def purge(
    db: Annotated[Path, typer.Option("--db", help="store folder built by `reidkit ingest`")],
    before: Annotated[
        str, typer.Option("--before", help="delete videos whose footage ended before this ISO 8601 date/time (UTC)")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be deleted")] = False,
) -> None:
    """Delete old videos from a person-search store: their tracks, crops, vectors (and uploaded files)."""
    from reidkit.search.retention import check_moment, purge_before
    from reidkit.service.audit import purge_target, record_cli
    from reidkit.service.service_db import connect
    from reidkit.store.rows import parse_time
    from reidkit.store.writer import Store

    moment = parse_time(before, "--before")
    check_moment(moment)
    with Store.open(db, writable=not dry_run) as store:
        report = purge_before(store, moment, dry_run=dry_run)
        summary = store.summary()
    record_cli(connect(db), "purge.dry_run" if dry_run else "purge", purge_target(report))
    verb = "would delete" if dry_run else "deleted"
    for video in report.videos:
        uploaded = ", uploaded file deleted" if video.file_deleted else ""
        typer.echo(
            f"{verb} video {video.id} (camera {video.camera!r}, {video.file!r}): footage ended "
            f"{video.footage_end.isoformat(timespec='seconds')} by its {video.dated_by}; {video.tracks} tracks, "
            f"{video.detections} crops{uploaded}"
        )
    typer.echo(
        f"{verb} {len(report.videos)} videos, {report.tracks} tracks, {report.detections} crops older than "
        f"{moment.isoformat()} from {db} [store now: {summary.videos} videos, {summary.tracks} tracks, "
        f"{summary.detections} crops]"
        + (" (dry run: nothing changed)" if dry_run else "")
    )
