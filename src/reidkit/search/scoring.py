"""How well stored tracks match a query feature, from SQLite's exact float32 features, inside the search filters:
what ranks the hits (``search``) and what places a person's other tracks on their trajectory (``identity``)."""

from __future__ import annotations

import numpy as np

from reidkit.search.feature_cache import track_crop_scores
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import DetectionRow


def score_tracks(
    store: StoreReader, query: np.ndarray, candidates: set[int], filters: SearchFilters
) -> list[tuple[int, float, float, DetectionRow]]:
    """``(track id, best crop score, track score, best crop)`` from the exact stored features; tracks with no crop
    passing the filters drop out.

    Without filters only each track's best crop is read as a row (a search reads the features of every crop of its
    candidate tracks, thousands in a busy store, but needs one row per track); with filters every crop's row is
    read, to check it."""
    if not candidates:
        return []
    track_ids, track_vectors = store.track_vectors(np.array(sorted(candidates), dtype=np.int64))
    track_scores = dict(zip(track_ids.tolist(), (track_vectors @ query).tolist()))
    det_ids, owners, crop_scores = track_crop_scores(store, track_ids, query)
    rows = store.detections(det_ids) if filters.active else None
    if rows is not None:
        keep = np.array([det_id in rows and filters.admits(rows[det_id]) for det_id in det_ids.tolist()], dtype=bool)
        det_ids, owners, crop_scores = det_ids[keep], owners[keep], crop_scores[keep]
    # each track's best crop: sort by track, then by score, best first; the first row of each track wins
    order = np.lexsort((-crop_scores, owners))
    first = order[np.r_[True, owners[order][1:] != owners[order][:-1]]] if len(order) else order
    best_rows = rows if rows is not None else store.detections(det_ids[first])
    return [
        (int(owners[i]), float(crop_scores[i]), track_scores[int(owners[i])], best_rows[int(det_ids[i])])
        for i in first.tolist()
        if int(det_ids[i]) in best_rows
    ]
