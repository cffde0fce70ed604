"""The k-reciprocal Jaccard distances among the items to cluster, as a sparse matrix of the pairs that can be close.

Two ways to the same sets: ``dense`` computes all N x N distances (evaluation.rerank's exact arithmetic, fine to
~15k items), ``knn`` asks FAISS for each item's nearest neighbours and joins the k-reciprocal sets sparsely, so
memory grows with N x neighbours instead of N^2 (docs/clustering.md, scale). Either way only pairs whose sets meet
(distance < 1) are kept: that is all DBSCAN reads.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from reidkit.errors import ConfigError
from reidkit.evaluation.rerank import (
    camera_aware_jaccard_distance,
    jaccard_distance_features,
    sparse_jaccard_distance,
)

# Above this many items ``auto`` switches to the k-NN graph: two N x N float32 matrices (distances, Jaccard) are
# 1.8 GB here.
DENSE_LIMIT = 15_000
GRAPHS = ("auto", "dense", "knn")
# How many items estimate each item's farthest distance in the k-NN graph (the weights' scale).
_FAR_SAMPLE = 1024
_PAIR_CHUNK = 1 << 18
# Rows of squared distances computed at once when looking for each item's farthest one.
_FAR_ROWS = 2048


def resolve_graph(graph: str, count: int) -> str:
    if graph not in GRAPHS:
        raise ConfigError(f"graph {graph!r}: use one of {', '.join(GRAPHS)}")
    if graph == "auto":
        return "dense" if count <= DENSE_LIMIT else "knn"
    return graph


def jaccard_graph(features: np.ndarray, k1: int, k2: int, graph: str, seed: int = 0) -> sparse.csr_array:
    """(N, N) CSR Jaccard distances of L2-normalised ``features`` below 1, the diagonal's zeros stored too.

    Float rounding can leave an item a hair away from itself, or a pair a hair below 0: both are set right, since
    scikit-learn refuses negative distances.
    """
    n = features.shape[0]
    if graph == "dense":
        dense = jaccard_distance_features(features, k1, k2)
        np.fill_diagonal(dense, 0.0)
        rows, cols = np.nonzero(dense < 1.0)
        found = sparse.csr_array((dense[rows, cols], (rows, cols)), shape=(n, n))
    else:
        ranked = knn_graph(features, max(k1 + 1, k2))
        far = farthest_squared(features, exact=False, seed=seed)
        # Each item keeps its k1 nearest in Jaccard distance (and whoever keeps it): memory N x k1, not N x 2-hop.
        found = sparse_jaccard_distance(ranked, lambda r, c: pair_distances(features, r, c), far, k1, k2, per_row=k1)
        found.setdiag(0.0)
    np.maximum(found.data, 0.0, out=found.data)
    return found


def camera_jaccard_graph(
    features: np.ndarray, cameras: np.ndarray, k_intra: int, k_inter: int, k2: int, graph: str, seed: int = 0
) -> sparse.csr_array:
    """``jaccard_graph`` with camera-aware k-reciprocal sets: each item's neighbours are looked up among its own
    camera's items and among the other cameras' items separately (``cameras``: (N,) camera codes, at least two).

    Both graph kinds rank with exact FAISS searches, one per camera; ``dense`` keeps every pair whose sets meet and
    scales the weights by each item's true farthest distance, ``knn`` keeps each item's k_intra + k_inter nearest
    in Jaccard distance and estimates the farthest distance from a sample, as ``jaccard_graph`` does.
    """
    n = features.shape[0]
    same = np.full((n, k_intra + 1), -1, dtype=np.int64)
    other = np.full((n, k_inter), -1, dtype=np.int64)
    for camera in np.unique(cameras):
        inside = np.flatnonzero(cameras == camera)
        outside = np.flatnonzero(cameras != camera)
        found = knn_graph(features[inside], k_intra + 1)
        same[inside, : found.shape[1]] = inside[found]
        found = _nearest_in(features[outside], features[inside], k_inter)
        other[inside, : found.shape[1]] = outside[found]
    ranked = knn_graph(features, max(k2, 1))
    dense = graph == "dense"
    far = farthest_squared(features, exact=dense, seed=seed)
    found = camera_aware_jaccard_distance(same, other, ranked, lambda r, c: pair_distances(features, r, c), far,
                                          k_intra, k_inter, k2, per_row=None if dense else k_intra + k_inter)
    found.setdiag(0.0)
    np.maximum(found.data, 0.0, out=found.data)
    return found


def farthest_squared(features: np.ndarray, exact: bool, seed: int = 0) -> np.ndarray:
    """(N,) each unit-length row's largest squared distance (the re-ranking weights' scale, squared as the encoding
    squares its distances) to every row when ``exact``, else to a random sample of ``_FAR_SAMPLE`` rows; computed
    ``_FAR_ROWS`` rows at a time."""
    n = features.shape[0]
    reference = features if exact else features[np.random.default_rng(seed).choice(n, min(n, _FAR_SAMPLE), False)]
    return np.concatenate([np.square(squared_distances_to(features[start : start + _FAR_ROWS], reference)).max(axis=1)
                           for start in range(0, n, _FAR_ROWS)])


def _nearest_in(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, min(k, len(items))) indices into ``items`` of each query's nearest items (exact, FAISS)."""
    import faiss

    index = faiss.IndexFlatL2(items.shape[1])
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, items.shape[0]))
    return found.astype(np.int64)


def knn_graph(features: np.ndarray, k: int) -> np.ndarray:
    """(N, min(k, N)) indices of each item's nearest items by Euclidean distance (exact, FAISS), itself first."""
    import faiss

    n = features.shape[0]
    k = min(k, n)
    index = faiss.IndexFlatL2(features.shape[1])
    index.add(np.ascontiguousarray(features, dtype=np.float32))
    _, found = index.search(np.ascontiguousarray(features, dtype=np.float32), k)
    # A duplicate of an item may come before it; the k-reciprocal code expects each item first in its own row.
    ranked = found.astype(np.int64)
    for row in np.flatnonzero(ranked[:, 0] != np.arange(n)):
        rest = ranked[row][ranked[row] != row]
        ranked[row] = np.concatenate([[row], rest[: k - 1]])
    return ranked


def squared_distances_to(features: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N, M) squared Euclidean distances of unit-length rows: 2 - 2 cos, clipped at 0."""
    return np.maximum(2.0 - 2.0 * features @ others.T, 0.0).astype(np.float32)


def pair_distances(features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of unit-length rows for index pairs, in chunks that bound the memory."""
    out = np.empty(rows.size, dtype=np.float32)
    for start in range(0, rows.size, _PAIR_CHUNK):
        r, c = rows[start : start + _PAIR_CHUNK], cols[start : start + _PAIR_CHUNK]
        cos = np.einsum("ij,ij->i", features[r], features[c])
        out[start : start + _PAIR_CHUNK] = np.maximum(2.0 - 2.0 * cos, 0.0)
    return out
