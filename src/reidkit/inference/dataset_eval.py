"""Test a model on a dataset's query/gallery split and report it with the protocol that produced the numbers.

Training's periodic evaluation, ``reidkit test`` and the demo all go through ``evaluate_on_dataset`` so the three can
never disagree about preprocessing, pooling or metric; the summary's keys extend ``reidkit eval-features``'s with
the protocol fields (split, query mode, flip, backbone initialisation, input size, model) that a number needs to be
comparable with another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reidkit.data import ImageRecord, ReidDataset
from reidkit.data.market_attributes import AttributeLabels
from reidkit.errors import DatasetError
from reidkit.evaluation import score_features
from reidkit.evaluation.attributes import score_attributes
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
    attribute_labels: AttributeLabels | None = None,
) -> EvalRun:
    """Extract query and gallery features and score them under the Market-1501 protocol.

    With an extractor made with ``attributes=True`` and the test identities' ``attribute_labels``, the gallery's
    attributes (from the same forward pass as its features) are scored too: the authors' protocol scores every
    gallery image of a labelled identity (13,115 on Market-1501), ``summary["attributes"]``.
    """
    query = list(dataset.query)
    gallery = list(dataset.gallery)
    qf = extractor([r.path for r in query], desc="query features")
    gf, gallery_attributes = extractor.extract([r.path for r in gallery], desc="gallery features")
    records = query
    if multi_query:
        if not dataset.multi_query:
            raise DatasetError(
                f"{dataset.root}: {dataset.name} has no multi-query crops (gt_bbox/); drop --multi-query"
            )
        query_keys = {(r.pid, r.camid) for r in query}
        extra = [r for r in dataset.multi_query if (r.pid, r.camid) in query_keys]
        qf = np.concatenate([qf, extractor([r.path for r in extra], desc="multi-query features")])
        records = query + extra
    scored = score_features(
        qf, [r.pid for r in records], [r.camid for r in records], gf, [r.pid for r in gallery],
        [r.camid for r in gallery], metric=metric, rerank=rerank, k1=RERANK_K1, k2=RERANK_K2,
        lambda_value=RERANK_LAMBDA, multi_query="mean" if multi_query else None,
    )
    result, distmat = scored.result, scored.distances
    if multi_query:
        # One representative crop per pooled (pid, camera) for figures: the first query crop of that pair.
        first: dict[tuple[int, int], ImageRecord] = {}
        for record in query:
            first.setdefault((record.pid, record.camid), record)
        query = [first[(int(p), int(c))] for p, c in zip(scored.q_pids, scored.q_camids, strict=True)]
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
    if gallery_attributes is not None and attribute_labels is not None:
        summary["attributes"] = score_gallery_attributes(gallery, gallery_attributes, attribute_labels)
    return EvalRun(summary=summary, distmat=distmat, query=query, gallery=gallery)


def score_gallery_attributes(
    gallery: list[ImageRecord], probabilities: np.ndarray, labels: AttributeLabels
) -> dict[str, Any]:
    """The attribute scores of the gallery images whose identity ``labels`` has (distractors and junk have none)."""
    rows = [i for i, record in enumerate(gallery) if record.pid in labels.by_pid]
    if not rows:
        raise DatasetError(f"{labels.source}: labels none of the gallery's identities; labels of another split?")
    truth = labels.table([gallery[i].pid for i in rows], missing=-1)
    return {**asdict(score_attributes(labels.schema, probabilities[rows], truth)), "labels": str(labels.source)}
