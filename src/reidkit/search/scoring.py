"""How well stored tracks match a query feature, from SQLite's exact float32 features, inside the search filters:
what ranks the hits (``search``) and what places a person's other tracks on their trajectory (``identity``)."""

from __future__ import annotations

import numpy as np

from reidkit.search.filters import SearchFilters
from reidkit.search.rows import DetectionRow
from reidkit.search.store import Store


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
