"""A store's crops with what its footage says for free: the input of ``reidkit adapt --db`` (docs/adaptation.md).

Crops of one track are one person (must-link), two crops of one frame of one video are two people (cannot-link).
Plain lists, so that training, which never imports the search stage, can take them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reidkit.errors import StoreError
from reidkit.store.paths import stored_file

if TYPE_CHECKING:
    from reidkit.store.reader import StoreReader


@dataclass(frozen=True)
class TrackCrops:
    """One entry per stored detection, in row order: crop file, camera name, track id, (video id, frame index)."""

    paths: list[Path]
    cameras: list[str]
    tracks: list[int]
    frames: list[tuple[int, int]]


def track_crops(store: StoreReader) -> TrackCrops:
    """Every crop of ``store`` with its camera, track and frame."""
    rows = store.db.execute(
        "SELECT d.crop_path, c.name, d.track_id, d.video_id, d.frame_index FROM detections d "
        "JOIN videos v ON v.id = d.video_id JOIN cameras c ON c.id = v.camera_id ORDER BY d.id"
    ).fetchall()
    if not rows:
        raise StoreError(f"store {store.root} holds no crops yet; ingest a video into it first")
    return TrackCrops(
        [stored_file(store.root, path) for path, *_ in rows],
        [str(row[1]) for row in rows],
        [int(row[2]) for row in rows],
        [(int(row[3]), int(row[4])) for row in rows],
    )
