"""Query-to-gallery distance matrices, computed in row blocks so that a 20k x 20k problem needs only its output.

Squared Euclidean (not its square root) is the convention of the re-ranking authors and of most ReID code, and
ranking is the same either way. Each block is one multi-threaded torch matmul written straight into the output.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_features

Metric = Literal["euclidean", "cosine"]
METRICS: tuple[Metric, ...] = ("euclidean", "cosine")


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
    query = torch.from_numpy(as_features(qf, "query features"))
    gallery = torch.from_numpy(as_features(gf, "gallery features"))
    if query.shape[1] != gallery.shape[1]:
        raise ReidkitError(
            f"query features have dimension {query.shape[1]} but gallery features {gallery.shape[1]}: "
            "extract both with the same model"
        )
    if metric == "cosine":
        query = torch.nn.functional.normalize(query, dim=1)
        gallery = torch.nn.functional.normalize(gallery, dim=1)
    out = np.empty((query.shape[0], gallery.shape[0]), dtype=np.float32)
    out_t = torch.from_numpy(out)
    gallery_t = gallery.t()
    gallery_sq = (gallery * gallery).sum(dim=1) if metric == "euclidean" else None
    with torch.no_grad():
        for start in range(0, query.shape[0], block_size):
            block = query[start : start + block_size]
            target = out_t[start : start + block.shape[0]]
            torch.mm(block, gallery_t, out=target)
            if gallery_sq is None:
                target.neg_().add_(1.0)
            else:
                target.mul_(-2.0).add_((block * block).sum(dim=1, keepdim=True)).add_(gallery_sq)
            target.clamp_(min=0.0)
    return out
