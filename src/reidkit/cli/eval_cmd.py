"""``reidkit eval-features``: score saved query / gallery feature files under the Market-1501 protocol."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class MetricChoice(str, Enum):
    euclidean = "euclidean"
    cosine = "cosine"


class PoolChoice(str, Enum):
    mean = "mean"
    max = "max"


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the ``reidkit`` app."""
    app.command("eval-features")(eval_features)


def eval_features(
    query: Annotated[Path, typer.Option("--query", help=".npz features file of the queries (save_features format).")],
    gallery: Annotated[Path, typer.Option("--gallery", help=".npz features file of the gallery.")],
    metric: Annotated[MetricChoice, typer.Option(help="Distance: squared Euclidean or 1 - cosine.")] = (
        MetricChoice.euclidean
    ),
    rerank: Annotated[
        bool, typer.Option("--rerank", help="Apply k-reciprocal re-ranking (Zhong et al. 2017).")
    ] = False,
    k1: Annotated[int, typer.Option(help="Re-ranking: k of the k-reciprocal sets.")] = 20,
    k2: Annotated[int, typer.Option(help="Re-ranking: neighbours averaged by query expansion (1 = none).")] = 6,
    lambda_value: Annotated[
        float, typer.Option("--lambda", help="Re-ranking: weight of the original distance.")
    ] = 0.3,
    multi_query: Annotated[
        bool, typer.Option("--multi-query", help="Pool the query features of each (pid, camera) into one query.")
    ] = False,
    pool: Annotated[PoolChoice, typer.Option(help="Multi-query pooling.")] = PoolChoice.mean,
    max_rank: Annotated[int, typer.Option(help="Length of the CMC curve.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Rank-1/5/10, mAP and mINP of query features against gallery features."""
    from reidkit.evaluation import evaluate_features, load_features

    query_set, gallery_set = load_features(query), load_features(gallery)
    result = evaluate_features(
        query_set.features,
        query_set.pids,
        query_set.camids,
        gallery_set.features,
        gallery_set.pids,
        gallery_set.camids,
        metric=metric.value,
        rerank=rerank,
        k1=k1,
        k2=k2,
        lambda_value=lambda_value,
        multi_query=pool.value if multi_query else None,
        max_rank=max_rank,
    )
    if as_json:
        summary = {key: value for key, value in result.items() if key != "cmc"}
        summary["cmc"] = result["cmc"]
        typer.echo(json.dumps(summary))
        return
    rerank_text = f"k1={k1} k2={k2} lambda={lambda_value}" if rerank else "no"
    lines = [
        f"queries   {result['num_query']} ({result['num_valid_query']} with a true match, {result['query_mode']})",
        f"gallery   {result['num_gallery']}",
        f"metric    {result['metric']}",
        f"re-rank   {rerank_text}",
        "",
        f"Rank-1    {result['rank1']:7.2%}",
        f"Rank-5    {result['rank5']:7.2%}",
        f"Rank-10   {result['rank10']:7.2%}",
        f"mAP       {result['mAP']:7.2%}",
        f"mINP      {result['mINP']:7.2%}",
    ]
    typer.echo("\n".join(lines))
