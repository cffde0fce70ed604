"""``reidkit adapt``: teach a trained model a new site's cameras from unlabelled crops (docs/adaptation.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reidkit.errors import ConfigError

if TYPE_CHECKING:
    from reidkit.training.adaptation import TargetCrops


def register(app: typer.Typer) -> None:
    app.command("adapt", no_args_is_help=True)(adapt)


def adapt(
    out: Annotated[Path, typer.Option("--out", help="the adapted model file to write (.pt)")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="the model to adapt: a reidkit model file or a shipped model's name "
                     "(default: the shipped model)"),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="recipe of each round (default: the one the checkpoint was trained with)"),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="section.key=value overrides, e.g. \"data.dataset_options={train_pairs: [2]}\""),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="cluster-then-train rounds")] = 6,
    epochs_per_round: Annotated[int, typer.Option("--epochs-per-round", help="epochs over each round's clusters")] = 4,
    method: Annotated[
        str, typer.Option("--method", help="clustering method (`reidkit list clustering`; measured: dbscan-jaccard)")
    ] = "dbscan-jaccard",
    camera_norm: Annotated[
        bool, typer.Option("--camera-norm/--no-camera-norm", help="centre each camera's features before clustering")
    ] = True,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="rounds' runs, resumable (default: <out>.rounds/)")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="adapt to this person-search store's crops instead of the recipe's dataset"),
    ] = None,
) -> None:
    """Adapt a model to the unlabelled train crops of the recipe's dataset (their identities are never read), or
    with --db to a store's crops, where a track's crops are one person and two crops of one frame are two.

    The dataset's query / gallery split, if any, is evaluated after each round for the report only. Run the same
    command again to resume after a stop.
    """
    if out.suffix != ".pt":
        raise ConfigError(f"--out {out}: give a .pt file name for the adapted model")
    from reidkit.config import apply_overrides, config_from_dict, load_config
    from reidkit.models.model_file import load_checkpoint
    from reidkit.models.zoo import DEFAULT_MODEL

    checkpoint = checkpoint or Path(DEFAULT_MODEL)

    if config is not None:
        base = load_config(config, overrides or [])
    else:
        payload = load_checkpoint(checkpoint)
        if "config" not in payload:
            raise ConfigError(f"{checkpoint}: records no training config; pass --config with the round's recipe")
        base = apply_overrides(config_from_dict(payload["config"], str(checkpoint)), overrides or [])
    from reidkit.training.adaptation import AdaptOptions, TargetCrops, adaptation_clustering
    from reidkit.training.adaptation import adapt as run_adaptation

    if db is not None:
        target, evaluation = _store_target(db), None
    else:
        from reidkit.data import load_dataset
        from reidkit.data.subset import subset_identities

        dataset = load_dataset(base.data.dataset, Path(base.data.root), **base.data.dataset_options)
        dataset = subset_identities(dataset, base.data.max_train_ids, base.data.max_test_ids)
        target, evaluation = TargetCrops.from_records(dataset.train), (dataset if dataset.query else None)
    options = AdaptOptions(rounds, epochs_per_round, adaptation_clustering(method, camera_norm))
    result = run_adaptation(
        base, checkpoint, target, work_dir or out.with_suffix(".rounds"), out, options, evaluation=evaluation,
        echo=typer.echo,
    )
    typer.echo(f"adapted model: {out}")
    last = result.rounds[-1]
    typer.echo(json.dumps({"rounds": len(result.rounds), "clusters": last.clusters, **last.metrics}, default=str))


def _store_target(db: Path) -> TargetCrops:
    """The store's crops as adaptation targets: a track's crops must link, a frame's crops cannot."""
    from reidkit.search.track_crops import track_crops
    from reidkit.store.reader import StoreReader
    from reidkit.training.adaptation import TargetCrops

    with StoreReader.open(db) as store:
        crops = track_crops(store)
    return TargetCrops(crops.paths, list(crops.cameras), groups=list(crops.tracks), frames=list(crops.frames))
