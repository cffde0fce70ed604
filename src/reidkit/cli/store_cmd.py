"""``reidkit store ...``: looking after a person-search store as a whole (``reindex-backend``: FAISS <-> Milvus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.ingest_options import MilvusUriOption, index_choice

store_app = typer.Typer(help="Look after a person-search store (move it between vector indexes).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``store`` group to the ``reidkit`` app."""
    app.add_typer(store_app, name="store")


@store_app.command("reindex-backend")
def reindex_backend(
    db: Annotated[Path, typer.Option("--db", help="store folder built by `reidkit ingest`")],
    to: Annotated[str, typer.Option("--to", help="the vector index to move to: faiss or milvus")],
    milvus_uri: MilvusUriOption = None,
) -> None:
    """Rebuild a store's vector index in another backend from its stored features, then switch to it.

    The old index keeps serving until the new one is complete; then the store records the new backend and the old
    index is deleted. Needs the store's writer lock (no ingest at the same time); restart a running `reidkit serve`.
    """
    from reidkit.store.backend_move import move_store
    from reidkit.store.writer import Store

    backend, options = index_choice(to, milvus_uri)
    with Store.open(db, writable=True) as store:
        report = move_store(store, backend or to, options)
    typer.echo(
        f"moved {db} from {report.source} to {report.target}: {report.crops} crops, {report.tracks} tracks "
        f"re-indexed from SQLite in {report.seconds:.1f} s"
    )
