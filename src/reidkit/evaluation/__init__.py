"""Evaluation: blocked distances, Market-1501 CMC / mAP / mINP, multi-query pooling, k-reciprocal re-ranking
(and the k-reciprocal Jaccard distance among one set of items, which clustering uses).

NumPy only at import: torch is never needed here, and re-ranking's SciPy (a third of a second to import) loads
on first use of ``re_ranking`` or ``rerank_features``, so that ``reidkit eval-features`` starts at once.
"""

from typing import Any

from reidkit.evaluation.distances import METRICS, Metric, compute_distance_matrix
from reidkit.evaluation.feature_evaluation import (
    FeatureEvaluationResult,
    ScoredFeatures,
    evaluate_features,
    score_features,
)
from reidkit.evaluation.feature_files import FeatureSet, load_features, save_features
from reidkit.evaluation.market_protocol import EvaluationResult, evaluate
from reidkit.evaluation.multi_query import POOLS, Pool, pool_multi_query

__all__ = [
    "METRICS",
    "POOLS",
    "EvaluationResult",
    "FeatureEvaluationResult",
    "FeatureSet",
    "Metric",
    "Pool",
    "ScoredFeatures",
    "compute_distance_matrix",
    "evaluate",
    "evaluate_features",
    "jaccard_distance",
    "jaccard_distance_features",
    "load_features",
    "pool_multi_query",
    "re_ranking",
    "rerank_features",
    "save_features",
    "score_features",
    "sparse_jaccard_distance",
]


_RERANK_NAMES = (
    "re_ranking",
    "rerank_features",
    "jaccard_distance",
    "jaccard_distance_features",
    "sparse_jaccard_distance",
)


def __getattr__(name: str) -> Any:
    """The re-ranking and Jaccard functions, imported on first access (PEP 562): SciPy loads only for them."""
    if name in _RERANK_NAMES:
        from reidkit.evaluation import rerank

        return getattr(rerank, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
