"""How good a clustering is against known identities: pairwise precision / recall / F1, NMI, ARI, cluster count,
and the cross-camera rate.

Unclustered items (-1) count as clusters of one each: they put no pair together, which is what a user sees.
The cross-camera rate is the share of identities seen by two or more cameras whose crops from every camera have
the same majority cluster: the question "is the person of camera A the one of camera B" answered right.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reidkit.clustering.types import UNCLUSTERED


@dataclass(frozen=True)
class ClusterScores:
    precision: float
    recall: float
    f1: float
    nmi: float
    ari: float
    num_clusters: int
    num_identities: int
    unclustered: float
    cross_camera: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_clusters(labels: np.ndarray, pids: np.ndarray, camids: np.ndarray | None = None) -> ClusterScores:
    """Scores of predicted ``labels`` against true ``pids`` (and ``camids`` for the cross-camera rate; NaN without)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = np.asarray(labels, dtype=np.int64)
    pids = np.asarray(pids)
    singletons = as_singletons(labels)
    precision, recall, f1 = pairwise_scores(singletons, pids)
    cross = cross_camera_rate(singletons, pids, np.asarray(camids)) if camids is not None else float("nan")
    return ClusterScores(
        precision=precision,
        recall=recall,
        f1=f1,
        nmi=float(normalized_mutual_info_score(pids, singletons)),
        ari=float(adjusted_rand_score(pids, singletons)),
        num_clusters=int(np.unique(labels[labels != UNCLUSTERED]).size),
        num_identities=int(np.unique(pids).size),
        unclustered=float(np.mean(labels == UNCLUSTERED)) if labels.size else 0.0,
        cross_camera=cross,
    )


def as_singletons(labels: np.ndarray) -> np.ndarray:
    """Labels with each unclustered item given a cluster of its own (new labels above the others)."""
    out = labels.copy()
    noise = np.flatnonzero(out == UNCLUSTERED)
    out[noise] = out.max(initial=-1) + 1 + np.arange(noise.size)
    return out


def pairwise_scores(labels: np.ndarray, pids: np.ndarray) -> tuple[float, float, float]:
    """Pairwise precision (pairs put together that are one person), recall (pairs of one person put together), F1."""
    _, cluster = np.unique(labels, return_inverse=True)
    _, person = np.unique(pids, return_inverse=True)
    joint = np.unique(cluster.astype(np.int64) * (person.max() + 1) + person, return_counts=True)[1]
    together = _pairs(joint)
    predicted, actual = _pairs(np.bincount(cluster)), _pairs(np.bincount(person))
    precision = together / predicted if predicted else 1.0
    recall = together / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def cross_camera_rate(labels: np.ndarray, pids: np.ndarray, camids: np.ndarray) -> float:
    """Share of identities with crops from >= 2 cameras whose per-camera majority clusters are all one."""
    seen = hits = 0
    for pid in np.unique(pids):
        mine = pids == pid
        cameras = np.unique(camids[mine])
        if cameras.size < 2:
            continue
        seen += 1
        majorities = {_majority(labels[mine & (camids == camera)]) for camera in cameras}
        hits += len(majorities) == 1
    return hits / seen if seen else float("nan")


def _majority(labels: np.ndarray) -> int:
    values, counts = np.unique(labels, return_counts=True)
    return int(values[np.argmax(counts)])


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int(np.sum(counts * (counts - 1) // 2))
