"""How well stored tracks match a query feature, from SQLite's exact float32 features, inside the search filters:
what ranks the hits (``search``) and what places a person's other tracks on their trajectory (``identity``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from reidkit.search.rows import DetectionRow, epoch_seconds
from reidkit.search.store import Store


@dataclass(frozen=True)
class SearchFilters:
    cameras: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None

    def admits(self, row: DetectionRow) -> bool:
        if self.cameras and row.camera not in self.cameras:
            return False
        if self.after is None and self.before is None:
            return True
        if row.wall_time is None:
            return False  # a video ingested without --start-time has no wall-clock time to compare
        moment = epoch_seconds(row.wall_time)
        if self.after is not None and moment < epoch_seconds(self.after):
            return False
        return self.before is None or moment <= epoch_seconds(self.before)


def score_tracks(
    store: Store, query: np.ndarray, candidates: set[int], filters: SearchFilters
) -> list[tuple[int, float, float, DetectionRow]]:
    """``(track id, best crop score, track score, best crop)`` from the exact stored features; tracks with no crop
    passing the filters drop out."""
    if not candidates:
        return []
    track_ids, track_vectors = store.track_vectors(np.array(sorted(candidates), dtype=np.int64))
    track_scores = dict(zip(track_ids.tolist(), (track_vectors @ query).tolist()))
    det_ids, owners, features = store.track_detection_features(track_ids)
    crop_scores = features @ query
    rows = store.detections(det_ids)
    best: dict[int, tuple[float, DetectionRow]] = {}
    for det_id, owner, crop_score in zip(det_ids.tolist(), owners.tolist(), crop_scores.tolist()):
        row = rows.get(det_id)
        if row is None or not filters.admits(row):
            continue
        if owner not in best or crop_score > best[owner][0]:
            best[owner] = (crop_score, row)
    return [(t, best[t][0], track_scores[t], best[t][1]) for t in best]
