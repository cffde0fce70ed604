"""Features in, Market-1501 metrics out: the protocol options (metric, re-ranking, multi-query) in one call."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.arrays import as_features, as_labels
from reidkit.evaluation.distances import METRICS, Metric, compute_distance_matrix
from reidkit.evaluation.market_protocol import EvaluationResult, evaluate
from reidkit.evaluation.multi_query import Pool, pool_multi_query


class FeatureEvaluationResult(EvaluationResult):
    """``evaluate``'s result plus the protocol that produced it, so that a stored result explains itself.

    ``k1``, ``k2`` and ``lambda_value`` are None without re-ranking; ``query_mode`` is ``single``,
    ``multi-mean`` or ``multi-max``.
    """

    metric: str
    rerank: bool
    k1: int | None
    k2: int | None
    lambda_value: float | None
    query_mode: str


class ScoredFeatures(NamedTuple):
    """``evaluate_features``'s result with what figures also need: the distances and the (pooled) query labels."""

    result: FeatureEvaluationResult
    distances: np.ndarray
    q_pids: np.ndarray
    q_camids: np.ndarray


def evaluate_features(*args: Any, **kwargs: Any) -> FeatureEvaluationResult:
    """``score_features`` without the distance matrix: the metrics and the protocol that produced them."""
    return score_features(*args, **kwargs).result


def score_features(
    qf: Any,
    q_pids: Any,
    q_camids: Any,
    gf: Any,
    g_pids: Any,
    g_camids: Any,
    metric: Metric = "euclidean",
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    multi_query: Pool | None = None,
    max_rank: int = 50,
) -> ScoredFeatures:
    """Distances (optionally k-reciprocal re-ranked) between query and gallery features, scored by ``evaluate``.

    With ``multi_query`` ("mean" or "max") the query features of each (pid, camid) are pooled into one query first.
    """
    if metric not in METRICS:
        raise ReidkitError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    query = as_features(qf, "query features")
    q_pids = as_labels(q_pids, "query pids", query.shape[0])
    q_camids = as_labels(q_camids, "query camids", query.shape[0])
    if multi_query is not None:
        query, q_pids, q_camids = pool_multi_query(query, q_pids, q_camids, pool=multi_query)
    if rerank:
        from reidkit.evaluation.rerank import rerank_features  # SciPy: imported only when re-ranking

        distances = rerank_features(query, gf, metric, k1=k1, k2=k2, lambda_value=lambda_value)
    else:
        distances = compute_distance_matrix(query, gf, metric)
    result = FeatureEvaluationResult(
        **evaluate(distances, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank),
        metric=metric,
        rerank=rerank,
        k1=k1 if rerank else None,
        k2=k2 if rerank else None,
        lambda_value=lambda_value if rerank else None,
        query_mode="single" if multi_query is None else f"multi-{multi_query}",
    )
    return ScoredFeatures(result, distances, q_pids, q_camids)
