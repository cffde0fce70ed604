"""Retention: deleting footage-derived data once it is old. Surveillance data should not live forever.

A video's footage ends at its start time plus the frames it holds (up to its last committed frame, at its frame
rate). A video ingested without a start time has no wall-clock time at all; it is dated by when it was ingested
(``created_at``), which is never earlier than its footage, so such a video is kept at least as long as it would be
with a start time. Deleting a video removes its rows (tracks, crops, frame digests), its crop files and its vectors;
the vector indexes are saved at once, so no file on disk still holds a deleted person's features. A video file
inside the store's ``uploads/`` folder (saved there by the service's upload endpoint) is deleted with the video's
last row; a file elsewhere belongs to the user and is left alone.

Used by ``reidkit purge`` and by the service's admin endpoint; both need the store's writer lock, so a purge waits
for no ingest: it is refused while one runs.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reidkit.errors import ConfigError, StoreError
from reidkit.store.rows import epoch_seconds

if TYPE_CHECKING:
    from reidkit.store.writer import Store

UPLOADS = "uploads"  # <db>/uploads/: videos the service saved; purged with their video


@dataclass(frozen=True)
class DeletedVideo:
    """A video that a purge deleted (or, in a dry run, would delete)."""

    id: int
    camera: str
    file: str  # the video file's name (not its path: reports are shown over HTTP)
    footage_end: datetime  # UTC
    dated_by: str  # "start time" or "ingest time" (no start time was given)
    tracks: int
    detections: int
    file_deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "camera": self.camera, "file": self.file, "footage_end": self.footage_end.isoformat(),
            "dated_by": self.dated_by, "tracks": self.tracks, "detections": self.detections,
            "file_deleted": self.file_deleted,
        }


@dataclass
class PurgeReport:
    before: datetime
    dry_run: bool
    videos: list[DeletedVideo] = field(default_factory=list)

    @property
    def tracks(self) -> int:
        return sum(video.tracks for video in self.videos)

    @property
    def detections(self) -> int:
        return sum(video.detections for video in self.videos)

    def to_json(self) -> dict[str, Any]:
        return {
            "before": self.before.isoformat(), "dry_run": self.dry_run, "videos": [v.to_json() for v in self.videos],
            "tracks": self.tracks, "detections": self.detections,
        }


def check_moment(moment: datetime, option: str = "--before") -> None:
    """Refuse a moment in the future: it would delete footage that is still being recorded."""
    if epoch_seconds(moment) > time.time():
        raise ConfigError(f"{option} {moment.isoformat()} is in the future; a purge deletes footage older than a "
                          "past moment (naive times are UTC)")


def purge_before(
    store: Store, moment: datetime, dry_run: bool = False, spare: Collection[int] = ()
) -> PurgeReport:
    """Delete every video whose footage ended before ``moment`` (naive: UTC), with its rows, crops and vectors.
    ``dry_run`` only reports (a read-only store will do); otherwise ``store`` must be writable. ``spare``: videos
    still being written (a live camera's open session, ``reidkit watch --keep``), never deleted."""
    check_moment(moment)
    cutoff = epoch_seconds(moment)
    report = PurgeReport(moment, dry_run)
    for video_id, end, dated_by in _footage_ends(store):
        if end < cutoff and video_id not in spare:
            report.videos.append(_describe(store, video_id, end, dated_by))
    if not dry_run:
        report.videos = [_delete(store, video) for video in report.videos]
        store.save_indexes()
    return report


def delete_video(store: Store, video_id: int) -> DeletedVideo:
    """Delete one video (``StoreError`` if there is none) with its rows, crops, vectors and uploaded file."""
    ends = {video: (end, dated_by) for video, end, dated_by in _footage_ends(store)}
    if video_id not in ends:
        raise StoreError(f"store {store.root} has no video {video_id}")
    deleted = _delete(store, _describe(store, video_id, *ends[video_id]))
    store.save_indexes()
    return deleted


def _footage_ends(store: Store) -> list[tuple[int, float, str]]:
    """``(video id, epoch seconds its footage ended, what dated it)`` for every video."""
    found = []
    rows = store.db.execute(
        "SELECT id, start_epoch, fps, start_frame, last_committed_frame, created_at FROM videos ORDER BY id"
    )
    for video_id, start_epoch, fps, start_frame, last_committed, created_at in rows:
        if start_epoch is None:
            found.append((int(video_id), epoch_seconds(datetime.fromisoformat(created_at)), "ingest time"))
            continue
        frames = last_committed + 1 if last_committed >= 0 else start_frame
        found.append((int(video_id), float(start_epoch) + (frames / fps if fps > 0 else 0.0), "start time"))
    return found


def _describe(store: Store, video_id: int, end: float, dated_by: str) -> DeletedVideo:
    video = store.video(video_id)

    def count(table: str) -> int:
        return int(store.db.execute(f"SELECT COUNT(*) FROM {table} WHERE video_id = ?", (video_id,)).fetchone()[0])

    return DeletedVideo(
        video_id, video.camera, Path(video.path).name, datetime.fromtimestamp(end, UTC), dated_by,
        count("tracks"), count("detections"),
    )


def _delete(store: Store, video: DeletedVideo) -> DeletedVideo:
    path = store.video(video.id).path
    store.delete_video(video.id)
    still_used = store.db.execute("SELECT 1 FROM videos WHERE path = ? LIMIT 1", (path,)).fetchone() is not None
    uploads = (store.root / UPLOADS).resolve()
    source = Path(path)
    file_deleted = False
    if not still_used and "://" not in path and source.resolve().is_relative_to(uploads) and source.is_file():
        source.unlink()
        file_deleted = True
    return replace(video, file_deleted=file_deleted)
