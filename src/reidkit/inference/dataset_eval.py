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
from reidkit.evaluation import compute_distance_matrix, evaluate, pool_multi_query, rerank_features
from reidkit.inference.extractor import FeatureExtractor


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
    if rerank:
        distmat = rerank_features(qf, gf, metric=metric)
    else:
        distmat = compute_distance_matrix(qf, gf, metric=metric)
    result = evaluate(distmat, q_pids, g_pids, q_camids, g_camids)
    card = extractor.card
    summary: dict[str, Any] = {
        "rank1": result["rank1"],
        "rank5": result["rank5"],
        "rank10": result["rank10"],
        "mAP": result["mAP"],
        "mINP": result["mINP"],
        "num_query": result["num_query"],
        "num_gallery": result["num_gallery"],
        "num_valid_query": result["num_valid_query"],
        "rerank": rerank,
        "metric": metric,
        "dataset": dataset.name,
        "root": str(dataset.root),
        "split": "test",
        "query_mode": "multi" if multi_query else "single",
        "flip": extractor.flip,
        "backbone_init": card.backbone_init,
        "input_size": list(card.input_size),
        "model": card.spec["name"],
        "backbone": card.spec["backbone"],
        "model_id": extractor.model_id,
    }
    return EvalRun(summary=summary, distmat=distmat, query=query, gallery=gallery)
