"""Market-1501 CMC / mAP / mINP from a distance matrix, exact and without sorting gallery indices.

The metrics only need the rank of every true match among the gallery images that count for its query. So each
query row is copied with the images that must not count (junk, same identity from the query's own camera) set to
+inf and sorted by value alone (NumPy's SIMD sort, on several threads since it releases the GIL); a match's rank is
then the number of values strictly below its distance, plus - only when its distance occurs more than once - the
valid gallery images with that same distance that come earlier in gallery order, which is where a stable sort
would put them. No query is ever argsorted, which is where the classic per-query loop spends its time (speed
against that loop: benchmarks/RESULTS.md, Evaluation).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_distance_matrix, as_labels
from reidkit.evaluation.parallel import worker_count

JUNK_PID = -1
_ROWS_PER_TASK = 128


class EvaluationResult(TypedDict):
    """What ``evaluate`` returns; ``cmc[k]`` is the fraction of valid queries matched within the top k + 1."""

    rank1: float
    rank5: float
    rank10: float
    mAP: float
    mINP: float
    cmc: list[float]
    num_query: int
    num_gallery: int
    num_valid_query: int


@dataclass(frozen=True)
class _MatchPairs:
    """Every (query, gallery) pair that is a true match, and every pair the protocol hides, as index arrays."""

    match_query: np.ndarray
    match_gallery: np.ndarray
    hidden_query: np.ndarray
    hidden_gallery: np.ndarray


def evaluate(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int = 50,
) -> EvaluationResult:
    """Rank-k, mAP and mINP under the Market-1501 protocol.

    For each query, gallery images of its identity seen by its own camera, and junk images (pid -1), are ignored;
    queries left without a true match are skipped. Equal distances rank in gallery order, as a stable sort would.
    """
    dist = as_distance_matrix(distmat, "distmat")
    num_query, num_gallery = dist.shape
    q_pids = as_labels(q_pids, "q_pids", num_query)
    q_camids = as_labels(q_camids, "q_camids", num_query)
    g_pids = as_labels(g_pids, "g_pids", num_gallery)
    g_camids = as_labels(g_camids, "g_camids", num_gallery)
    if max_rank < 1:
        raise ReidkitError(f"max_rank must be at least 1, got {max_rank}")
    pairs = _match_pairs(q_pids, q_camids, g_pids, g_camids)
    if pairs.match_query.size == 0:
        raise ReidkitError(
            "no query has a true match in the gallery (same identity, another camera): check that the query and "
            "gallery files come from the same split and that their pids and camids are right"
        )
    ranks = _match_ranks(dist, pairs, np.flatnonzero(g_pids == JUNK_PID), q_pids, q_camids, g_pids, g_camids)
    return _metrics(pairs.match_query, ranks, num_query, num_gallery, max_rank)


def counted_gallery(q_pid: int, q_camid: int, g_pids: np.ndarray, g_camids: np.ndarray) -> np.ndarray:
    """Which gallery items count for one query under the protocol: neither junk nor its identity in its own camera.

    ``evaluate`` applies the same rule in bulk; figures call this so they show exactly the ranking it scored.
    """
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    return (g_pids != JUNK_PID) & ~((g_pids == q_pid) & (g_camids == q_camid))


def _match_pairs(q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray) -> _MatchPairs:
    """All same-identity pairs at once: sort the gallery by pid, then expand each query's slice of it."""
    gallery_by_pid = np.argsort(g_pids, kind="stable")
    sorted_pids = g_pids[gallery_by_pid]
    first = np.searchsorted(sorted_pids, q_pids, side="left")
    counts = np.searchsorted(sorted_pids, q_pids, side="right") - first
    counts[q_pids == JUNK_PID] = 0
    query = np.repeat(np.arange(q_pids.size), counts)
    within = np.arange(query.size) - np.repeat(np.cumsum(counts) - counts, counts)
    gallery = gallery_by_pid[np.repeat(first, counts) + within]
    same_camera = g_camids[gallery] == q_camids[query]
    return _MatchPairs(query[~same_camera], gallery[~same_camera], query[same_camera], gallery[same_camera])


def _match_ranks(
    dist: np.ndarray,
    pairs: _MatchPairs,
    junk_columns: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
) -> np.ndarray:
    """0-based rank of each true match among its query's valid gallery images, in the order of ``pairs``."""
    num_query = dist.shape[0]
    ranks = np.empty(pairs.match_query.size, dtype=np.int64)
    match_bounds = np.searchsorted(pairs.match_query, np.arange(num_query + 1))
    hidden_bounds = np.searchsorted(pairs.hidden_query, np.arange(num_query + 1))

    def rank_rows(start: int) -> None:
        stop = min(start + _ROWS_PER_TASK, num_query)
        rows = np.array(dist[start:stop])
        h_lo, h_hi = hidden_bounds[start], hidden_bounds[stop]
        rows[:, junk_columns] = np.inf
        rows[pairs.hidden_query[h_lo:h_hi] - start, pairs.hidden_gallery[h_lo:h_hi]] = np.inf
        rows.sort(axis=1)  # NaN sorts last: checking the last column finds every NaN left in the rows
        _refuse_nan(rows[:, -1], start)
        lo, hi = match_bounds[start], match_bounds[stop]
        if lo == hi:
            return
        query = pairs.match_query[lo:hi]
        gallery = pairs.match_gallery[lo:hi]
        values = dist[query, gallery]
        below = np.empty(hi - lo, dtype=np.int64)
        bounds = match_bounds[start : stop + 1] - lo
        for row in np.flatnonzero(np.diff(bounds)):  # values strictly below each match, row by row
            first, last = bounds[row], bounds[row + 1]
            below[first:last] = np.searchsorted(rows[row], values[first:last], side="left")
        following = rows[query - start, np.minimum(below + 1, rows.shape[1] - 1)]
        tied = np.flatnonzero((below + 1 < rows.shape[1]) & (following == values))
        for t in tied:
            below[t] += _earlier_valid_ties(dist, int(query[t]), int(gallery[t]), q_pids, q_camids, g_pids, g_camids)
        ranks[lo:hi] = below

    _refuse_nan(dist[pairs.hidden_query, pairs.hidden_gallery], 0, pairs.hidden_query)
    _refuse_nan(dist[:, junk_columns].max(axis=1, initial=-np.inf), 0)
    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        list(pool.map(rank_rows, range(0, num_query, _ROWS_PER_TASK)))
    return ranks


def _refuse_nan(values: np.ndarray, first_row: int, rows: np.ndarray | None = None) -> None:
    """Raise for the first NaN in ``values``, naming its distmat row (``rows[i]``, or ``first_row + i``)."""
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        row = int(rows[bad[0]]) if rows is not None else first_row + int(bad[0])
        raise ReidkitError(f"distmat row {row} contains NaN: the features it was computed from are broken")


def _earlier_valid_ties(
    dist: np.ndarray,
    query: int,
    gallery: int,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
) -> int:
    """How many valid gallery images before ``gallery`` share its distance: a stable sort ranks those first."""
    tied = np.flatnonzero(dist[query, :gallery] == dist[query, gallery])
    hidden = (g_pids[tied] == JUNK_PID) | ((g_pids[tied] == q_pids[query]) & (g_camids[tied] == q_camids[query]))
    return int(tied.size - np.count_nonzero(hidden))


def _metrics(
    match_query: np.ndarray, ranks: np.ndarray, num_query: int, num_gallery: int, max_rank: int
) -> EvaluationResult:
    """CMC, AP and INP from the ranks of the true matches, grouped per query without a Python loop."""
    order = np.lexsort((ranks, match_query))
    query, rank = match_query[order], ranks[order]
    starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
    counts = np.diff(np.r_[starts, query.size])
    group = np.repeat(np.arange(starts.size), counts)
    hits_so_far = np.arange(query.size) - starts[group] + 1
    average_precision = np.bincount(group, weights=hits_so_far / (rank + 1.0)) / counts
    first_rank = rank[starts]
    last_rank = rank[starts + counts - 1]
    inverse_negative_penalty = counts / (last_rank + 1.0)
    num_valid = starts.size
    cmc = np.cumsum(np.bincount(np.minimum(first_rank, max_rank), minlength=max_rank + 1)[:max_rank]) / num_valid
    return EvaluationResult(
        rank1=float(np.mean(first_rank < 1)),
        rank5=float(np.mean(first_rank < 5)),
        rank10=float(np.mean(first_rank < 10)),
        mAP=float(np.mean(average_precision)),
        mINP=float(np.mean(inverse_negative_penalty)),
        cmc=[float(x) for x in cmc],
        num_query=num_query,
        num_gallery=num_gallery,
        num_valid_query=num_valid,
    )
