"""Query-to-gallery distance matrices, computed in row blocks so that a 20k x 20k problem needs only its output.

Squared Euclidean (not its square root) is the convention of the re-ranking authors and of most ReID code, and
ranking is the same either way. Each block is one multi-threaded BLAS matmul (NumPy's) written straight into the
output, then finished in place on several threads. NumPy rather than torch: evaluating saved features must not pay
the seconds torch takes to import (``reidkit eval-features``), and NumPy's float32 GEMM is at least as fast here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_features
from reidkit.evaluation.parallel import worker_count

Metric = Literal["euclidean", "cosine"]
METRICS: tuple[Metric, ...] = ("euclidean", "cosine")
_NORM_EPS = 1e-12  # torch.nn.functional.normalize's floor on the norm, so that an all-zero feature stays zero
_FINISH_ROWS = 256


def compute_distance_matrix(
    qf: Any, gf: Any, metric: Metric = "euclidean", block_size: int = 4096
) -> np.ndarray:
    """(Q, G) float32 distances: squared Euclidean, or 1 - cosine similarity of the L2-normalised features.

    Cancellation in ``|q|^2 + |g|^2 - 2 q.g`` can leave tiny negatives for identical features; they are clamped to 0.
    """
    if metric not in METRICS:
        raise ReidkitError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if block_size < 1:
        raise ReidkitError(f"block_size must be positive, got {block_size}")
    query = as_features(qf, "query features")
    gallery = as_features(gf, "gallery features")
    if query.shape[1] != gallery.shape[1]:
        raise ReidkitError(
            f"query features have dimension {query.shape[1]} but gallery features {gallery.shape[1]}: "
            "extract both with the same model"
        )
    if metric == "cosine":
        query, gallery = _normalised(query), _normalised(gallery)
        query_sq = gallery_sq = None
    else:
        query_sq, gallery_sq = _squared_norms(query), _squared_norms(gallery)
    out = np.empty((query.shape[0], gallery.shape[0]), dtype=np.float32)
    gallery_t = gallery.T
    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        for start in range(0, query.shape[0], block_size):
            stop = min(start + block_size, query.shape[0])
            np.matmul(query[start:stop], gallery_t, out=out[start:stop])
            # The element-wise passes are single-threaded ufuncs that release the GIL: split them over threads.
            list(
                pool.map(
                    lambda first: _finish(out, first, min(first + _FINISH_ROWS, stop), query_sq, gallery_sq),
                    range(start, stop, _FINISH_ROWS),
                )
            )
    return out


def _squared_norms(features: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", features, features)


def _normalised(features: np.ndarray) -> np.ndarray:
    norms = np.sqrt(_squared_norms(features))
    return features / np.maximum(norms, np.float32(_NORM_EPS))[:, None]


def _finish(
    out: np.ndarray, start: int, stop: int, query_sq: np.ndarray | None, gallery_sq: np.ndarray | None
) -> None:
    """Turn rows ``start:stop`` of ``out`` from dot products into distances, in place."""
    target = out[start:stop]
    if query_sq is None or gallery_sq is None:
        np.subtract(np.float32(1.0), target, out=target)
    else:
        target *= np.float32(-2.0)
        target += query_sq[start:stop, None]
        target += gallery_sq
    np.maximum(target, np.float32(0.0), out=target)
