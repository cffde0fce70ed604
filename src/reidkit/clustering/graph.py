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
from reidkit.evaluation.rerank import jaccard_distance_features, sparse_jaccard_distance

# Above this many items ``auto`` switches to the k-NN graph: two N x N float32 matrices (distances, Jaccard) are
# 1.8 GB here.
DENSE_LIMIT = 15_000
GRAPHS = ("auto", "dense", "knn")
# How many items estimate each item's farthest distance in the k-NN graph (the weights' scale).
_FAR_SAMPLE = 1024
_PAIR_CHUNK = 1 << 18


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
        sample = np.random.default_rng(seed).choice(n, size=min(n, _FAR_SAMPLE), replace=False)
        far = np.square(squared_distances_to(features, features[sample])).max(axis=1)
        # Each item keeps its k1 nearest in Jaccard distance (and whoever keeps it): memory N x k1, not N x 2-hop.
        found = sparse_jaccard_distance(ranked, lambda r, c: pair_distances(features, r, c), far, k1, k2, per_row=k1)
        found.setdiag(0.0)
    np.maximum(found.data, 0.0, out=found.data)
    return found


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
