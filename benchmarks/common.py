"""Reference implementations and synthetic Market-1501-sized data, shared by the benchmarks and the tests.

The references are the classic, obviously-correct loops (one query or one item at a time), written from the
published algorithms; reidkit's fast versions must agree with them exactly. They are deliberately slow: never
import them from the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MARKET_QUERIES = 3368
MARKET_GALLERY = 15913


def reference_evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> dict[str, object]:
    """The per-query loop: stable argsort, drop junk and same-camera matches, cumulative sum of the matches."""
    length = max(max_rank, 10)  # Rank-10 is reported even when the curve asked for is shorter
    curves, average_precisions, inverse_penalties = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        hidden = (g_pids[order] == -1) | ((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        matches = (g_pids[order] == q_pids[q])[~hidden].astype(np.float64)
        if not matches.any():
            continue
        hits = matches.cumsum()
        curve = np.ones(length)
        shown = min(length, hits.size)
        curve[:shown] = np.minimum(hits[:shown], 1.0)
        curves.append(curve)
        average_precisions.append((hits / np.arange(1, hits.size + 1) * matches).sum() / matches.sum())
        last = np.flatnonzero(matches)[-1]
        inverse_penalties.append(hits[last] / (last + 1.0))
    if not curves:
        raise ValueError("no query has a valid match")
    cmc = np.mean(curves, axis=0)
    return {
        "rank1": float(cmc[0]),
        "rank5": float(cmc[4]),
        "rank10": float(cmc[9]),
        "mAP": float(np.mean(average_precisions)),
        "mINP": float(np.mean(inverse_penalties)),
        "cmc": [float(x) for x in cmc[:max_rank]],
        "num_valid_query": len(curves),
    }


@dataclass(frozen=True)
class MarketLikeSplit:
    """Query and gallery labels shaped like Market-1501's test split (751 ids, 6 cameras, distractors, junk)."""

    q_pids: np.ndarray
    q_camids: np.ndarray
    g_pids: np.ndarray
    g_camids: np.ndarray


def market_like_split(
    seed: int = 0,
    num_ids: int = 751,
    num_queries: int = MARKET_QUERIES,
    num_gallery: int = MARKET_GALLERY,
    num_distractors: int = 2798,
    num_junk: int = 348,
    num_cameras: int = 6,
) -> MarketLikeSplit:
    """Labels only: each id gets one query from each of 4-5 distinct cameras and ~17 gallery images on any camera."""
    rng = np.random.default_rng(seed)
    per_id_queries = np.full(num_ids, num_queries // num_ids)
    per_id_queries[rng.choice(num_ids, num_queries - per_id_queries.sum(), replace=False)] += 1
    q_pids = np.repeat(np.arange(1, num_ids + 1), per_id_queries)
    q_camids = np.concatenate([rng.choice(num_cameras, n, replace=False) for n in per_id_queries])
    num_identity_images = num_gallery - num_distractors - num_junk
    g_pids = np.concatenate(
        [
            np.arange(1, num_ids + 1),  # every id has at least one gallery image
            rng.integers(1, num_ids + 1, num_identity_images - num_ids),
            np.zeros(num_distractors, dtype=np.int64),
            np.full(num_junk, -1),
        ]
    )
    order = rng.permutation(num_gallery)
    g_pids = g_pids[order]
    g_camids = rng.integers(0, num_cameras, num_gallery)
    return MarketLikeSplit(q_pids, q_camids.astype(np.int64), g_pids.astype(np.int64), g_camids.astype(np.int64))


def random_features(num: int, dim: int, seed: int) -> np.ndarray:
    """Gaussian float32 features: the hardest case for ranking shortcuts, since matches land anywhere."""
    return np.random.default_rng(seed).standard_normal((num, dim), dtype=np.float32)


def identity_features(pids: np.ndarray, dim: int, signal: float, centre_seed: int, noise_seed: int) -> np.ndarray:
    """Gaussian noise plus ``signal`` x a per-identity centre (distractors and junk get noise only).

    Query and gallery features drawn with the same ``centre_seed`` share identities; give them different
    ``noise_seed``s.
    """
    centres = np.random.default_rng(centre_seed).standard_normal((int(pids.max()) + 1, dim), dtype=np.float32)
    noise = np.random.default_rng(noise_seed).standard_normal((pids.size, dim), dtype=np.float32)
    return noise + np.float32(signal) * np.where((pids > 0)[:, None], centres[np.maximum(pids, 0)], 0)


def machine_summary() -> dict[str, object]:
    """What the numbers were measured on; the load average shows how much else was running."""
    import os
    import platform

    import torch

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def reference_re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) one item at a time, with the authors' conventions.

    Ties in the initial ranking are broken by index (a stable argsort) so that results are reproducible.
    """
    num_query = q_g_dist.shape[0]
    joint = np.concatenate(
        [np.concatenate([q_q_dist, q_g_dist], axis=1), np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0
    )
    joint = np.power(joint, 2).astype(np.float32)
    joint = np.transpose(joint / np.max(joint, axis=0))
    num_all = joint.shape[0]
    initial_rank = np.argsort(joint, axis=1, kind="stable")
    half = int(np.around(k1 / 2.0))

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = initial_rank[i, : k + 1]
        backward = initial_rank[forward, : k + 1]
        return forward[np.flatnonzero((backward == i).any(axis=1))]

    weights = np.zeros_like(joint)
    for i in range(num_all):
        neighbours = reciprocal(i, k1)
        expanded = neighbours
        for candidate in neighbours:
            candidate_neighbours = reciprocal(int(candidate), half)
            if len(np.intersect1d(candidate_neighbours, neighbours)) > 2.0 / 3 * len(candidate_neighbours):
                expanded = np.append(expanded, candidate_neighbours)
        expanded = np.unique(expanded)
        weight = np.exp(-joint[i, expanded])
        weights[i, expanded] = weight / np.sum(weight)
    if k2 != 1:
        expanded_weights = np.zeros_like(weights)
        for i in range(num_all):
            expanded_weights[i] = np.mean(weights[initial_rank[i, :k2]], axis=0)
        weights = expanded_weights
    inverted_index = [np.flatnonzero(weights[:, k]) for k in range(num_all)]
    jaccard = np.zeros((num_query, num_all), dtype=np.float32)
    for i in range(num_query):
        shared = np.zeros(num_all, dtype=np.float32)
        for k in np.flatnonzero(weights[i]):
            holders = inverted_index[k]
            shared[holders] = shared[holders] + np.minimum(weights[i, k], weights[holders, k])
        jaccard[i] = 1 - shared / (2.0 - shared)
    final = jaccard * (1 - lambda_value) + joint[:num_query] * lambda_value
    return final[:, num_query:]
