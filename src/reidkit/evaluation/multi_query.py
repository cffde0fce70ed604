"""Multi-query pooling: Market-1501's gt_bbox protocol describes one person seen by one camera with several crops.

Pooling the crops' features (mean or element-wise max) gives one query per (identity, camera), which is then
ranked like a single query.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_features, as_labels

Pool = Literal["mean", "max"]
POOLS: tuple[Pool, ...] = ("mean", "max")


def pool_multi_query(
    features: Any, pids: Any, camids: Any, pool: Pool = "mean"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pooled float32 feature per (pid, camid) group, groups in increasing (pid, camid) order."""
    if pool not in POOLS:
        raise ReidkitError(f"unknown multi-query pooling {pool!r}: use one of {', '.join(POOLS)}")
    feats = as_features(features, "multi-query features")
    pids = as_labels(pids, "multi-query pids", feats.shape[0])
    camids = as_labels(camids, "multi-query camids", feats.shape[0])
    if feats.shape[0] == 0:
        raise ReidkitError("multi-query pooling needs at least one query feature")
    order = np.lexsort((camids, pids))
    pids, camids, feats = pids[order], camids[order], feats[order]
    starts = np.flatnonzero(np.r_[True, (pids[1:] != pids[:-1]) | (camids[1:] != camids[:-1])])
    if pool == "max":
        pooled = np.maximum.reduceat(feats, starts, axis=0)
    else:
        sizes = np.diff(np.r_[starts, feats.shape[0]])
        pooled = (np.add.reduceat(feats.astype(np.float64), starts, axis=0) / sizes[:, None]).astype(np.float32)
    return pooled, pids[starts], camids[starts]
