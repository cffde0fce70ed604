"""The ``reidkit`` command: one typer app; each pipeline stage adds its commands from its own module.

Stage modules import torch and friends only inside their command functions, so ``reidkit --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from reidkit.errors import ReidkitError

app = typer.Typer(
    name="reidkit",
    help="Person re-identification: train and test ReID models, evaluate features, search people in video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Keeps ``reidkit`` a group of commands even when a stage registers only one."""


def _register_stages() -> None:
    from reidkit.cli import (
        adapt_cmd,
        attributes_cmd,
        cluster_cmd,
        demo_cmd,
        eval_cmd,
        export_cmd,
        ingest_cmd,
        ingest_many_cmd,
        list_cmd,
        people_cmd,
        purge_cmd,
        reindex_cmd,
        search_cmd,
        service_cmd,
        store_cmd,
        train_cmd,
        viz_cmd,
        watch_cmd,
        watchlist_cmd,
        zones_cmd,
    )

    for stage in (
        eval_cmd,
        train_cmd,
        attributes_cmd,
        export_cmd,
        adapt_cmd,
        demo_cmd,
        ingest_cmd,
        search_cmd,
        ingest_many_cmd,
        cluster_cmd,
        people_cmd,
        watchlist_cmd,
        viz_cmd,
        service_cmd,
        purge_cmd,
        watch_cmd,
        store_cmd,
        reindex_cmd,
        list_cmd,
        zones_cmd,
    ):
        stage.register(app)


_register_stages()


def main() -> None:
    """Entry point: run the app, printing a ``ReidkitError`` as one line instead of a traceback.

    In standalone mode click already turns usage errors into a message and exit code 2; everything else
    propagates, so only our own error family needs catching here.
    """
    try:
        app()
    except ReidkitError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
