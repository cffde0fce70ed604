"""Evaluation: blocked distances, Market-1501 CMC / mAP / mINP, multi-query pooling, k-reciprocal re-ranking."""

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
from reidkit.evaluation.rerank import re_ranking, rerank_features

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
    "load_features",
    "pool_multi_query",
    "re_ranking",
    "rerank_features",
    "save_features",
    "score_features",
]
