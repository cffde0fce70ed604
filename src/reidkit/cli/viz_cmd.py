"""``reidkit viz``: the pictures that explain a model (docs/visualisation.md).

``rank`` (ranked lists, MGN paper Fig. 4), ``attention`` (per-branch activation maps, Fig. 5), ``curves`` (a
training run's curves) and ``embedding`` (t-SNE of a features file). Each writes one PNG, or SVG with
``--format svg`` or an ``.svg`` output name. Torch, matplotlib and scikit-learn are imported inside the commands.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from reidkit.errors import ConfigError

MAX_ATTENTION_IMAGES = 12


class FigureFormat(str, Enum):
    png = "png"
    svg = "svg"


FormatOption = Annotated[
    FigureFormat | None, typer.Option("--format", help="png or svg (default: the --out suffix, else png)")
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")]


def register(app: typer.Typer) -> None:
    """Add the ``viz`` group to the ``reidkit`` app."""
    viz = typer.Typer(name="viz", help="Pictures: ranked lists, activation maps, curves, embeddings.",
                      no_args_is_help=True)
    viz.command("rank", no_args_is_help=True)(rank)
    viz.command("attention", no_args_is_help=True)(attention)
    viz.command("curves", no_args_is_help=True)(curves)
    viz.command("embedding", no_args_is_help=True)(embedding)
    app.add_typer(viz)


def _out(out: Path | None, default: str, fmt: FigureFormat | None) -> Path:
    from reidkit.viz.figure_files import figure_path

    return figure_path(Path(default) if out is None else out, None if fmt is None else fmt.value)


def rank(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a .pt written by reidkit train")],
    root: Annotated[Path, typer.Option("--root", help="dataset folder (e.g. data/market1501)")],
    dataset: Annotated[
        str, typer.Option("--dataset", help="dataset reader: market1501, dukemtmc, cuhk03, ...")
    ] = "market1501",
    queries: Annotated[int, typer.Option("--queries", help="how many queries to draw at random")] = 6,
    seed: Annotated[int, typer.Option("--seed", help="seed of the random draw of queries")] = 0,
    top_k: Annotated[int, typer.Option("--top-k", help="matches shown per query")] = 10,
    max_ids: Annotated[
        int | None, typer.Option("--max-ids", help="only the first N query identities (quicker; same protocol)")
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="euclidean (squared) or cosine")] = "euclidean",
    flip: Annotated[bool, typer.Option("--flip", help="average each feature with its mirrored crop's")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="figure file (default ranked_list.png)")] = None,
    fmt: FormatOption = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    workers: Annotated[int, typer.Option("--workers", help="image-decoding worker processes")] = 2,
) -> None:
    """Fig. 4: random queries (with a seed) beside their top-k, green = same person, red = another."""
    if queries < 1 or top_k < 1:
        raise ConfigError(f"--queries {queries} / --top-k {top_k}: both must be at least 1")
    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"--metric {metric!r}: use euclidean or cosine")
    path = _out(out, "ranked_list", fmt)
    from reidkit.cli.train_cmd import format_summary
    from reidkit.data import load_dataset
    from reidkit.data.subset import subset_identities
    from reidkit.inference import FeatureExtractor, evaluate_on_dataset
    from reidkit.inference.device import resolve_device
    from reidkit.viz.ranked_list import plot_ranked_lists, random_queries

    data = subset_identities(load_dataset(dataset, root), None, max_ids)
    extractor = FeatureExtractor(
        checkpoint, device=resolve_device(device, "--device"), batch_size=batch_size, flip=flip, workers=workers
    )
    run = evaluate_on_dataset(extractor, data, metric=metric)
    rows = random_queries(len(run.query), queries, seed)
    summary = {**run.summary, "checkpoint": str(checkpoint)}
    figure = plot_ranked_lists(
        run.distmat, run.query, run.gallery, rows, path, top_k=top_k,
        title=f"{summary['model']}/{summary['backbone']} on {summary['dataset']} test: top-{top_k} of {len(rows)} "
        f"queries drawn with seed {seed} (green = same person, red = another; {metric} distance under each)",
    )
    right = sum(1 for panel in figure.panels if panel.same_person)
    shown = sum(1 for panel in figure.panels if panel.rank > 0)
    typer.echo(format_summary(summary))
    typer.echo(f"{figure.path}: queries {rows} (seed {seed}), {right} of {shown} shown matches are the same person")


def attention(
    images: Annotated[list[Path], typer.Argument(help="crop files and/or folders of crops")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a .pt written by reidkit train")],
    out: Annotated[Path | None, typer.Option("--out", help="figure file (default attention.png)")] = None,
    fmt: FormatOption = None,
    per_stripe: Annotated[
        bool, typer.Option("--per-stripe", help="scale each stripe of a part branch to its own peak")
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Fig. 5: each branch's activation map (feature-map energy) over each crop; MGN: global, part-2, part-3."""
    path = _out(out, "attention", fmt)
    from reidkit.cli.train_cmd import expand_images
    from reidkit.inference.activation_maps import activation_maps
    from reidkit.inference.device import resolve_device
    from reidkit.viz.attention import height_shares, plot_activation_maps

    paths = expand_images(images)
    if len(paths) > MAX_ATTENTION_IMAGES:
        raise ConfigError(
            f"{len(paths)} images: one figure holds at most {MAX_ATTENTION_IMAGES}; pass fewer crops"
        )
    maps = activation_maps(checkpoint, paths, device=resolve_device(device, "--device"))
    scale = "each stripe scaled to its peak" if per_stripe else "scaled to its peak"
    figure = plot_activation_maps(
        maps, path, labels=[p.name for p in paths], per_stripe=per_stripe,
        title=f"{checkpoint.name}: each branch's feature-map energy (mean squared activation), {scale}",
    )
    for image, item in zip(paths, maps, strict=True):
        shares = "  ".join(
            f"{b.name} {'/'.join(f'{s:.2f}' for s in height_shares(b.energy))}" for b in item.branches
        )
        typer.echo(f"{image.name}: energy share top/middle/bottom third: {shares}")
    typer.echo(f"wrote {figure}")


def curves(
    run_dir: Annotated[Path, typer.Argument(help="the output folder of a reidkit train run (has metrics.csv)")],
    out: Annotated[Path | None, typer.Option("--out", help="figure file (default RUN_DIR/curves.png)")] = None,
    fmt: FormatOption = None,
) -> None:
    """A training run's loss, Rank-1 / mAP and learning-rate curves from its metrics log."""
    path = _out(out, str(run_dir / "curves"), fmt)
    from reidkit.viz.curves import plot_run_curves

    typer.echo(f"wrote {plot_run_curves(run_dir, path)}")


def embedding(
    features: Annotated[Path, typer.Argument(help=".npz features file (reidkit extract / save_features)")],
    out: Annotated[Path | None, typer.Option("--out", help="figure file (default embedding.png)")] = None,
    fmt: FormatOption = None,
    max_points: Annotated[
        int, typer.Option("--max-points", help="above this many crops, whole identities are sampled (t-SNE cost)")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the identity sample and of t-SNE")] = 0,
) -> None:
    """t-SNE of a features file's crops, one colour and marker per identity."""
    if max_points < 5:
        raise ConfigError(f"--max-points {max_points}: t-SNE needs at least 5 points")
    path = _out(out, "embedding", fmt)
    from reidkit.evaluation import load_features
    from reidkit.viz.embedding import plot_embedding

    figure = plot_embedding(load_features(features), path, max_points=max_points, seed=seed)
    typer.echo(
        f"wrote {figure.path}: {figure.points} of {figure.total} crops, {figure.identities} identities (seed {seed})"
    )
