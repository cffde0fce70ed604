"""``reidkit reindex``: re-embed a store's crops under another model, switching over atomically (docs/search.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.ingest_options import DeviceOption
from reidkit.cli.options import EmbedBackendOption
from reidkit.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("reindex", no_args_is_help=True)(reindex)


def reindex(
    db: Annotated[Path, typer.Option("--db", help="store folder built by `reidkit ingest`")],
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="the new model: a file (e.g. from `reidkit adapt`) or a shipped model's name "
                     "(default: the shipped model, which also predicts attributes)"),
    ] = None,
    device: DeviceOption = "cpu",
    batch_size: Annotated[int, typer.Option("--batch-size", help="crops per forward pass and per resumable commit")] = 64,
    embed_backend: EmbedBackendOption = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Re-embed every stored crop with a new model, then switch the store to it in one transaction.

    With a model that has an attribute head (the shipped default) the crops' and tracks' attributes are recomputed
    too: how a store made without attributes gets them for `reidkit search --attr`.
    Searches keep using the old model until the switch; a stopped reindex resumes where it stopped when run again.
    Needs the store's writer lock (no ingest meanwhile); a running `reidkit serve` follows the switch. The store's
    people clustering, made with the old model, is dropped in the same transaction.
    """
    if batch_size < 1:
        raise ConfigError("--batch-size must be a positive integer")
    from reidkit.models.zoo import DEFAULT_MODEL
    from reidkit.inference.model_choice import choose_model
    from reidkit.search.reindex import reindex_store
    from reidkit.store.writer import Store

    with Store.open(db, writable=True) as store:
        choice = choose_model(checkpoint or DEFAULT_MODEL, store.model, device=device, batch_size=batch_size,
                              backend=embed_backend)
        report = reindex_store(store, choice.extractor, choice.source, batch_size=batch_size, progress=not quiet)
    typer.echo(
        f"re-embedded {db}: model {report.old_model} -> {report.new_model} ({report.feature_dim}-d), "
        f"{report.detections} crops ({report.computed} computed by this run), {report.tracks} tracks, "
        f"{report.seconds:.1f} s" + (f", attributes ({choice.extractor.schema.name})" if choice.extractor.schema else "")
    )
    if report.people_dropped:
        typer.echo(f"its people clustering was made with the old model and is gone: run `reidkit cluster --db {db}` "
                   "again")
