"""Test a model on a dataset's query/gallery split and report it with the protocol that produced the numbers.

Training's periodic evaluation, ``reidkit test`` and the demo all go through ``evaluate_on_dataset`` so the three can
never disagree about preprocessing, pooling or metric; the summary's keys extend ``reidkit eval-features``'s with
the protocol fields (split, query mode, flip, backbone initialisation, input size, model) that a number needs to be
comparable with another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reidkit.data import ImageRecord, ReidDataset
from reidkit.errors import DatasetError
from reidkit.evaluation import (
    FeatureEvaluationResult,
    compute_distance_matrix,
    evaluate,
    pool_multi_query,
    rerank_features,
)
from reidkit.inference.extractor import FeatureExtractor

RERANK_K1, RERANK_K2, RERANK_LAMBDA = 20, 6, 0.3


@dataclass
class EvalRun:
    """The JSON-ready ``summary`` plus what figures need: the distances and the records they index."""

    summary: dict[str, Any]
    distmat: np.ndarray
    query: list[ImageRecord]
    gallery: list[ImageRecord]


def evaluate_on_dataset(
    extractor: FeatureExtractor,
    dataset: ReidDataset,
    metric: str = "euclidean",
    rerank: bool = False,
    multi_query: bool = False,
) -> EvalRun:
    """Extract query and gallery features and score them under the Market-1501 protocol."""
    query = list(dataset.query)
    gallery = list(dataset.gallery)
    qf = extractor([r.path for r in query], desc="query features")
    gf = extractor([r.path for r in gallery], desc="gallery features")
    q_pids = np.array([r.pid for r in query])
    q_camids = np.array([r.camid for r in query])
    if multi_query:
        if not dataset.multi_query:
            raise DatasetError(
                f"{dataset.root}: {dataset.name} has no multi-query crops (gt_bbox/); drop --multi-query"
            )
        query_keys = {(r.pid, r.camid) for r in query}
        extra = [r for r in dataset.multi_query if (r.pid, r.camid) in query_keys]
        ef = extractor([r.path for r in extra], desc="multi-query features")
        all_records = query + extra
        qf, q_pids, q_camids = pool_multi_query(
            np.concatenate([qf, ef]),
            np.array([r.pid for r in all_records]),
            np.array([r.camid for r in all_records]),
        )
        # One representative crop per pooled (pid, camera) for figures: the first query crop of that pair.
        first: dict[tuple[int, int], ImageRecord] = {}
        for record in query:
            first.setdefault((record.pid, record.camid), record)
        query = [first[(int(p), int(c))] for p, c in zip(q_pids, q_camids, strict=True)]
    g_pids = np.array([r.pid for r in gallery])
    g_camids = np.array([r.camid for r in gallery])
    # The steps of reidkit.evaluation.evaluate_features, unrolled to keep the distance matrix for figures; the
    # result carries the same keys, so `reidkit test --json` and `reidkit eval-features --json` agree.
    if rerank:
        distmat = rerank_features(qf, gf, metric=metric, k1=RERANK_K1, k2=RERANK_K2, lambda_value=RERANK_LAMBDA)
    else:
        distmat = compute_distance_matrix(qf, gf, metric=metric)
    result = FeatureEvaluationResult(
        **evaluate(distmat, q_pids, g_pids, q_camids, g_camids),
        metric=metric,
        rerank=rerank,
        k1=RERANK_K1 if rerank else None,
        k2=RERANK_K2 if rerank else None,
        lambda_value=RERANK_LAMBDA if rerank else None,
        query_mode="multi-mean" if multi_query else "single",
    )
    card = extractor.card
    summary: dict[str, Any] = {
        **result,
        "dataset": dataset.name,
        "root": str(dataset.root),
        "split": "test",
        "flip": extractor.flip,
        "backbone_init": card.backbone_init,
        "input_size": list(card.input_size),
        "model": card.spec["name"],
        "backbone": card.spec["backbone"],
        "model_id": extractor.model_id,
    }
    return EvalRun(summary=summary, distmat=distmat, query=query, gallery=gallery)
