"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with sparse neighbour sets instead of dense N x N matrices.

The authors' code keeps the joint (Q+G)^2 distance matrix, a full argsort of it and a dense weight matrix V, and
loops over every item in Python: at Market-1501 scale, minutes and gigabytes (benchmarks/RESULTS.md, Re-ranking).
Everything it computes is sparse except the input, so here only row blocks of the normalised joint matrix exist at a
time (each feeds a top-k), the reciprocal and expansion sets are sparse-matrix products, V is a CSR matrix, and the
Jaccard distance is a join through V's columns restricted to query rows. The float32 arithmetic follows the authors'
expressions term for term (same squaring, normalisation, exp, sums and accumulation order), so the re-ranked
distances match theirs bit for bit; ties in the initial ranking are broken by gallery index, like a stable sort.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_distance_matrix
from reidkit.evaluation.distances import Metric, compute_distance_matrix
from reidkit.evaluation.parallel import worker_count

_ROW_BLOCK = 256
_TILE = 256
_JACCARD_BLOCK = 64


def rerank_features(
    qf: Any,
    gf: Any,
    metric: Metric = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked (Q, G) distances from features, using the distances the authors' method expects.

    Those are squared Euclidean distances; for cosine that is 2 - 2 cos of the L2-normalised features.
    """
    blocks = [compute_distance_matrix(a, b, metric) for a, b in ((qf, gf), (qf, qf), (gf, gf))]
    if metric == "cosine":
        for block in blocks:
            block *= np.float32(2.0)
    q_g, q_q, g_g = blocks
    return re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)


def re_ranking(
    q_g_dist: Any,
    q_q_dist: Any,
    g_g_dist: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """(Q, G) float32 re-ranked distances: (1 - lambda) x Jaccard of k-reciprocal sets + lambda x original."""
    joint = _JointDistances.from_blocks(q_g_dist, q_q_dist, g_g_dist)
    k1, k2 = _check_neighbours(k1=k1, k2=k2)
    if not 0.0 <= lambda_value <= 1.0:
        raise ReidkitError(f"lambda_value must lie in [0, 1], got {lambda_value}")
    return _combine(_k_reciprocal_weights(joint, k1, k2), joint, float(lambda_value))


def jaccard_distance(dist: Any, k1: int = 20, k2: int = 6) -> np.ndarray:
    """(N, N) float32 Jaccard distances of the k-reciprocal sets among ONE set of items, from their (N, N)
    distances (squared Euclidean, as ``rerank_features`` uses): what clustering by re-identification needs.

    The same arithmetic as ``re_ranking`` with lambda 0: for a joint matrix [[q_q, q_g], [q_g^T, g_g]] the block
    ``[:Q, Q:]`` of this equals ``re_ranking(q_g, q_q, g_g, k1, k2, 0)`` bit for bit.
    """
    single = _JointDistances.single(dist)
    k1, k2 = _check_neighbours(k1=k1, k2=k2)
    weights = _k_reciprocal_weights(single, k1, k2)
    out = np.empty((single.num_all, single.num_all), dtype=np.float32)

    def keep(start: int, stop: int, rows: np.ndarray, cols: np.ndarray, jaccard: np.ndarray) -> None:
        out[start:stop] = 1.0
        out[rows + start, cols] = jaccard

    _jaccard_blocks(weights, single.num_all, 0, keep)
    return out


def jaccard_distance_features(features: Any, k1: int = 20, k2: int = 6) -> np.ndarray:
    """``jaccard_distance`` of the squared Euclidean distances among ``features`` (N, D)."""
    return jaccard_distance(compute_distance_matrix(features, features, "euclidean"), k1, k2)


def sparse_jaccard_distance(
    ranked: np.ndarray,
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    row_max: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    cutoff: float = 1.0,
    per_row: int | None = None,
) -> sparse.csr_array:
    """Jaccard distances among one set of N items from a k-nearest-neighbour graph instead of an N x N matrix.

    ``ranked`` (N, >= max(k1 + 1, k2)) lists each item's nearest items (itself first), ``pair_distance(rows,
    cols)`` gives the squared Euclidean distances of index pairs, and ``row_max`` each item's largest squared
    distance to anyone (an estimate will do: it only scales the weights). Only pairs whose k-reciprocal sets meet
    can be closer than 1, so only they are stored, those at most ``cutoff`` and, with ``per_row``, only each row's
    ``per_row`` smallest (then made symmetric: a pair kept by either row is kept by both). Entries are explicit,
    zeros included: scikit-learn's DBSCAN reads a sparse precomputed matrix's stored entries as the candidates.
    Time and memory grow with N x (neighbourhood size)^2, not N^2; the sets are those of ``jaccard_distance``
    whenever ``ranked`` holds the true nearest neighbours, the weights differ only by the estimated ``row_max``.
    """
    k1, k2 = _check_neighbours(k1=k1, k2=k2)
    graph = _NeighbourGraph(np.asarray(ranked, dtype=np.int64), pair_distance, np.asarray(row_max, np.float32))
    return _sparse_jaccard(_k_reciprocal_weights(graph, k1, k2), cutoff, per_row)


def camera_aware_jaccard_distance(
    same_camera: np.ndarray,
    other_cameras: np.ndarray,
    ranked: np.ndarray,
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    row_max: np.ndarray,
    k_intra: int = 3,
    k_inter: int = 5,
    k2: int = 6,
    cutoff: float = 1.0,
    per_row: int | None = None,
) -> sparse.csr_array:
    """``sparse_jaccard_distance`` with camera-aware k-reciprocal sets (after CA-Jaccard, Chen et al. CVPR 2024).

    A crop's nearest neighbours are mostly crops of its own camera (same light, angle and background), so a person's
    crops from another camera rarely make its k1 list, and plain k-reciprocal sets seldom span two cameras. Here
    each item's set is the union of its k-reciprocal neighbours among its own camera's items (``same_camera``,
    (N, >= k_intra + 1), itself first) and among the other cameras' items (``other_cameras``, (N, >= k_inter)),
    each with its own k; both expand with their half-size sets as the plain sets do. ``ranked`` (N, >= k2) lists the
    nearest items over all cameras for the query expansion. Rows may be padded with -1 where a camera has too few
    items. The weights and the Jaccard join are ``sparse_jaccard_distance``'s.
    """
    k_intra, k_inter, k2 = _check_neighbours(k_intra=k_intra, k_inter=k_inter, k2=k2)
    same_camera, other_cameras = np.asarray(same_camera, np.int64), np.asarray(other_cameras, np.int64)
    graph = _NeighbourGraph(np.asarray(ranked, dtype=np.int64), pair_distance, np.asarray(row_max, np.float32))

    def sets(intra: int, inter: int) -> sparse.csr_array:
        found = _reciprocal_sets(same_camera[:, : intra + 1]).maximum(_reciprocal_sets(other_cameras[:, :inter]))
        return sparse.csr_array(found)

    half_intra, half_inter = (int(np.around(k / 2.0)) for k in (k_intra, k_inter))
    expanded = _expanded_sets(sets(k_intra, k_inter), sets(half_intra, max(half_inter, 1)))
    weights = _encode(expanded, graph)
    if k2 != 1:
        weights = _query_expansion(weights, graph.nearest(k2))
    return _sparse_jaccard(weights, cutoff, per_row)


def _sparse_jaccard(weights: sparse.csr_array, cutoff: float, per_row: int | None) -> sparse.csr_array:
    """The Jaccard distances among V's rows that are at most ``cutoff`` (below 1), each row's ``per_row`` smallest
    when given (then symmetric again), as an explicit sparse matrix."""
    n = weights.shape[0]
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # one append per block: atomic across the threads
    limit = min(float(cutoff), np.nextafter(np.float32(1), np.float32(0)))

    def keep(start: int, stop: int, rows: np.ndarray, cols: np.ndarray, jaccard: np.ndarray) -> None:
        close = jaccard <= limit
        rows, cols, jaccard = rows[close], cols[close], jaccard[close]
        if per_row is not None:
            order = np.lexsort((jaccard, rows))
            rows, cols, jaccard = rows[order], cols[order], jaccard[order]
            first = np.searchsorted(rows, rows, side="left")
            nearest = np.arange(rows.size) - first < per_row
            rows, cols, jaccard = rows[nearest], cols[nearest], jaccard[nearest]
        blocks.append((rows + start, cols, jaccard))

    _jaccard_blocks(weights, n, 0, keep)
    rows, cols, values = (np.concatenate(part) for part in zip(*blocks, strict=True))
    if per_row is None:
        return sparse.csr_array((values.astype(np.float32), (rows, cols)), shape=(n, n))
    # Symmetric again: a pair kept by one of its rows is stored in both (Jaccard is symmetric).
    keys = np.concatenate([rows * n + cols, cols * n + rows])
    unique, first = np.unique(keys, return_index=True)
    both = np.concatenate([values, values]).astype(np.float32)[first]
    return sparse.csr_array((both, (unique // n, unique % n)), shape=(n, n))


def _check_neighbours(**sizes: int) -> tuple[int, ...]:
    """The neighbourhood sizes as ints, in the order given; one line naming them all when one is no positive
    integer."""
    if any(int(k) != k or k < 1 for k in sizes.values()):
        names = list(sizes)
        listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
        got = ", ".join(f"{name}={k}" for name, k in sizes.items())
        raise ReidkitError(f"{listed} must be positive integers, got {got}")
    return tuple(int(k) for k in sizes.values())


class _Distances(Protocol):
    """What the k-reciprocal encoding reads: each item's nearest items, and entries of the normalised matrix O."""

    @property
    def num_all(self) -> int: ...

    def nearest(self, k: int) -> np.ndarray: ...

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...


def _k_reciprocal_weights(distances: _Distances, k1: int, k2: int) -> sparse.csr_array:
    """V: each item's weights over its expanded k-reciprocal set, query-expanded over its k2 nearest items."""
    half = int(np.around(k1 / 2.0))
    ranked = distances.nearest(max(k1 + 1, half + 1, k2))
    reciprocal = _reciprocal_sets(ranked[:, : k1 + 1])
    expanded = _expanded_sets(reciprocal, _reciprocal_sets(ranked[:, : half + 1]))
    weights = _encode(expanded, distances)
    if k2 != 1:
        weights = _query_expansion(weights, ranked[:, :k2])
    return weights


@dataclass(frozen=True)
class _JointDistances:
    """The authors' normalised joint matrix O, never built whole: rows and single entries come from the blocks.

    With A = [[q_q, q_g], [q_g^T, g_g]] squared elementwise, O = (A / A.max(axis=0)).T, so row i of O is column
    i of A divided by its maximum (``row_max[i]``, known once ``nearest`` has visited row i).
    """

    q_g: np.ndarray
    q_q: np.ndarray
    g_g: np.ndarray
    row_max: np.ndarray

    @classmethod
    def from_blocks(cls, q_g: Any, q_q: Any, g_g: Any) -> _JointDistances:
        blocks = [as_distance_matrix(m, name) for m, name in ((q_g, "q_g_dist"), (q_q, "q_q_dist"), (g_g, "g_g_dist"))]
        q_g, q_q, g_g = blocks
        num_query, num_gallery = q_g.shape
        if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery, num_gallery):
            raise ReidkitError(
                f"re-ranking needs q_g_dist (Q, G), q_q_dist (Q, Q) and g_g_dist (G, G); got {q_g.shape}, "
                f"{q_q.shape} and {g_g.shape}"
            )
        if num_query == 0 or num_gallery == 0:
            raise ReidkitError("re-ranking needs at least one query and one gallery item")
        return cls(q_g, q_q, g_g, np.zeros(num_query + num_gallery, dtype=np.float32))

    @classmethod
    def single(cls, dist: Any) -> _JointDistances:
        """One set of items: all of them queries, no gallery (``q_q`` is the whole matrix)."""
        matrix = as_distance_matrix(dist, "dist")
        if matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
            raise ReidkitError(f"dist must be a square (N, N) matrix with N >= 2, got shape {matrix.shape}")
        empty = np.zeros((matrix.shape[0], 0), dtype=matrix.dtype)
        return cls(empty, matrix, np.zeros((0, 0), dtype=matrix.dtype), np.zeros(matrix.shape[0], dtype=np.float32))

    @property
    def num_query(self) -> int:
        return self.q_g.shape[0]

    @property
    def num_all(self) -> int:
        return self.q_g.shape[0] + self.q_g.shape[1]

    def squared_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of A^T, squared; the range lies wholly among queries or wholly among gallery items.

        Gallery rows are columns of the stored blocks; they are gathered in square tiles, because a strided
        column read written straight into rows thrashes the cache (timed in benchmarks/RESULTS.md, Re-ranking).
        """
        nq = self.num_query
        out = np.empty((stop - start, self.num_all), dtype=np.float32)
        if stop <= nq:
            np.square(self.q_q[:, start:stop].T, out=out[:, :nq], casting="same_kind")
            np.square(self.q_g[start:stop], out=out[:, nq:], casting="same_kind")
            return out
        columns = slice(start - nq, stop - nq)
        for block, offset in ((self.q_g, 0), (self.g_g, nq)):
            for first in range(0, block.shape[0], _TILE):
                last = min(first + _TILE, block.shape[0])
                np.square(block[first:last, columns].T, out=out[:, offset + first : offset + last], casting="same_kind")
        return out

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """O[rows, cols] for index arrays, exactly as the dense matrix would hold them: A[col, row]^2 / max."""
        nq = self.num_query
        squared = np.empty(rows.size, dtype=np.float32)
        query_row, query_col = rows < nq, cols < nq
        for pick, block, first, second in (
            (query_row & query_col, self.q_q, cols, rows),
            (query_row & ~query_col, self.q_g, rows, cols - nq),
            (~query_row & query_col, self.q_g, cols, rows - nq),
            (~query_row & ~query_col, self.g_g, cols - nq, rows - nq),
        ):
            squared[pick] = np.square(block[first[pick], second[pick]]).astype(np.float32)
        return squared / self.row_max[rows]

    def nearest(self, k: int) -> np.ndarray:
        """(N, min(k, N)) indices of each row's smallest entries of O, ordered by (value, index).

        Also records ``row_max``; a NaN or infinite input distance shows up there, since every entry of A is in
        some row of A^T and max propagates both.
        """
        nq, n = self.num_query, self.num_all
        k = min(k, n)
        ranked = np.empty((n, k), dtype=np.int64)

        def rank_rows(bounds: tuple[int, int]) -> None:
            start, stop = bounds
            rows = self.squared_rows(start, stop)
            row_max = rows.max(axis=1)
            for bad in np.flatnonzero(~np.isfinite(row_max) | (row_max <= 0))[:1]:
                item = f"query {start + bad}" if start < nq else f"gallery item {start + bad - nq}"
                problem = "contain NaN or infinity" if not np.isfinite(row_max[bad]) else "are all 0"
                raise ReidkitError(f"the distances of {item} {problem}: re-ranking cannot use them")
            self.row_max[start:stop] = row_max
            rows /= row_max[:, None]
            ranked[start:stop] = _smallest_stable(rows, k)

        starts = [*range(0, nq, _ROW_BLOCK), *range(nq, n, _ROW_BLOCK)]
        stops = [*starts[1:], n]
        with ThreadPoolExecutor(max_workers=worker_count()) as pool:
            list(pool.map(rank_rows, zip(starts, stops, strict=True)))
        return ranked


def _smallest_stable(rows: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest values of each row in (value, index) order, as a stable argsort would give."""
    if k == rows.shape[1]:
        return np.argsort(rows, axis=1, kind="stable")
    indices = np.argpartition(rows, k, axis=1)[:, : k + 1]  # the k + 1 smallest, in no particular order
    values = np.take_along_axis(rows, indices, axis=1)
    order = np.lexsort((indices, values), axis=-1)
    values, indices = np.take_along_axis(values, order, axis=1), np.take_along_axis(indices, order, axis=1)
    chosen = indices[:, :k]
    # When the (k+1)-th value equals the k-th, which of the tied items make the cut depends on their index.
    for r in np.flatnonzero(values[:, k] == values[:, k - 1]):
        chosen[r] = np.argsort(rows[r], kind="stable")[:k]
    return chosen


def _neighbour_graph(ranked: np.ndarray) -> sparse.csr_array:
    """N x N 0/1 matrix with a 1 at (i, j) for each j listed in row i of ``ranked`` (-1 = no one: padding)."""
    n, k = ranked.shape
    if (ranked >= 0).all():
        data = np.ones(n * k, dtype=np.int32)
        return sparse.csr_array((data, ranked.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    rows, slots = np.nonzero(ranked >= 0)
    data = np.ones(rows.size, dtype=np.int32)
    return sparse.csr_array((data, (rows, ranked[rows, slots])), shape=(n, n))


def _reciprocal_sets(ranked: np.ndarray) -> sparse.csr_array:
    """j is in R(i) when each of i and j is among the other's nearest ``ranked.shape[1]`` items."""
    forward = _neighbour_graph(ranked)
    return sparse.csr_array(forward.multiply(forward.T))


def _expanded_sets(reciprocal: sparse.csr_array, half_reciprocal: sparse.csr_array) -> sparse.csr_array:
    """R(i) plus the half-size set of each c in R(i) that shares more than 2/3 of its members with R(i)."""
    shared = sparse.csr_array((reciprocal @ half_reciprocal.T).multiply(reciprocal)).tocoo()
    half_sizes = np.diff(half_reciprocal.indptr)
    keep = shared.data > 2.0 / 3 * half_sizes[shared.col]
    n = reciprocal.shape[0]
    accepted = sparse.csr_array(
        (np.ones(int(keep.sum()), dtype=np.int32), (shared.row[keep], shared.col[keep])), shape=(n, n)
    )
    expanded = sparse.csr_array(reciprocal + accepted @ half_reciprocal)
    expanded.sort_indices()
    return expanded


def _encode(expanded: sparse.csr_array, joint: _Distances) -> sparse.csr_array:
    """V: weights exp(-O[i, j]) over the expanded set of i, normalised to sum 1 per row."""
    counts = np.diff(expanded.indptr)
    rows = np.repeat(np.arange(expanded.shape[0]), counts)
    weights = np.exp(-joint.entries(rows, expanded.indices))
    # np.sum per row reproduces the reference's pairwise float32 summation exactly; reduceat would not.
    totals = np.array([np.sum(weights[a:b]) for a, b in zip(expanded.indptr[:-1], expanded.indptr[1:], strict=True)])
    return sparse.csr_array((weights / totals[rows], expanded.indices, expanded.indptr), shape=expanded.shape)


def _query_expansion(weights: sparse.csr_array, ranked: np.ndarray) -> sparse.csr_array:
    """Row i becomes the mean of the V rows of its k2 nearest items (itself included).

    The 0/1 matrix keeps the neighbours in rank order, so the float32 product adds the rows in that order, as the
    reference's mean does; the division then mirrors NumPy's mean (float64 quotient, stored as float32).
    """
    n, k2 = ranked.shape
    pick = sparse.csr_array(
        (np.ones(n * k2, dtype=np.float32), ranked.ravel(), np.arange(0, n * k2 + 1, k2)), shape=(n, n)
    )
    summed = sparse.csr_array(pick @ weights)
    summed.data = (summed.data.astype(np.float64) / k2).astype(np.float32)
    summed.sort_indices()
    return summed


def _combine(weights: sparse.csr_array, joint: _JointDistances, lambda_value: float) -> np.ndarray:
    """(1 - lambda) x Jaccard + lambda x O for query rows and gallery columns."""
    nq = joint.num_query
    out = np.empty((nq, joint.num_all - nq), dtype=np.float32)

    def mix(start: int, stop: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
        jaccard = np.ones((stop - start, out.shape[1]), dtype=np.float32)
        jaccard[rows, cols] = values
        original = np.square(joint.q_g[start:stop]).astype(np.float32) / joint.row_max[start:stop, None]
        out[start:stop] = jaccard * (1 - lambda_value) + original * lambda_value

    _jaccard_blocks(weights, nq, nq, mix)
    return out


def _jaccard_blocks(
    weights: sparse.csr_array,
    num_rows: int,
    first_target: int,
    consume: Callable[[int, int, np.ndarray, np.ndarray, np.ndarray], None],
) -> None:
    """Jaccard distances of V's rows ``:num_rows`` against its rows ``first_target:``, one block of rows at a time on
    several threads: ``consume(start, stop, rows, cols, values)`` gets the pairs whose sets meet (row within the
    block, target column); every other pair is at distance 1.

    Jaccard's shared mass sum_k min(V[i, k], V[j, k]) is a join of row i's non-zeros with the target rows'
    non-zeros of the same column k. Row-indexing the transposed target part of V by row i's columns lists those
    pairs in C; np.add.at then accumulates them per (i, j) in float32 and in increasing k, exactly like the
    reference. The pairs are numbered compactly (np.unique), so the work grows with the pairs, not with N^2.
    """
    num_targets = weights.shape[0] - first_target
    by_column = sparse.csr_array(weights[first_target:].T)

    def fill(start: int) -> None:
        stop = min(start + _JACCARD_BLOCK, num_rows)
        lo, hi = weights.indptr[start], weights.indptr[stop]
        columns, values = weights.indices[lo:hi], weights.data[lo:hi]
        holders = by_column[columns]
        fan_out = np.diff(holders.indptr)
        row_offset = np.repeat(np.arange(stop - start) * num_targets, np.diff(weights.indptr[start : stop + 1]))
        pairs, slot = np.unique(np.repeat(row_offset, fan_out) + holders.indices, return_inverse=True)
        shared = np.zeros(pairs.size, dtype=np.float32)
        np.add.at(shared, slot, np.minimum(np.repeat(values, fan_out), holders.data))
        consume(start, stop, pairs // num_targets, pairs % num_targets, 1 - shared / (2.0 - shared))

    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        list(pool.map(fill, range(0, num_rows, _JACCARD_BLOCK)))


@dataclass(frozen=True)
class _NeighbourGraph:
    """The normalised matrix O read through a k-NN graph: nearest items from ``ranked``, entries computed on demand."""

    ranked: np.ndarray
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray]
    row_max: np.ndarray

    @property
    def num_all(self) -> int:
        return self.ranked.shape[0]

    def nearest(self, k: int) -> np.ndarray:
        if self.ranked.shape[1] < min(k, self.num_all):
            raise ReidkitError(
                f"the neighbour graph lists {self.ranked.shape[1]} items per row; k-reciprocal sets need {k}"
            )
        return self.ranked[:, :k]

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        squared = np.square(np.asarray(self.pair_distance(rows, cols), dtype=np.float32))
        return squared / self.row_max[rows]
