"""``reidkit cluster --db DIR`` (the store side of ``cluster``) and ``reidkit people --db DIR [ID]``: group a store's
tracks into people, and show who is who. The work lives in ``reidkit.search.grouping`` / ``search.people``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from reidkit.clustering import ClusterOptions


def register(app: typer.Typer) -> None:
    app.command("people")(show_people)


def cluster_store(db: Path, options: ClusterOptions) -> None:
    """``reidkit cluster --db``: cluster every track of store ``db`` into people and store them (replacing the
    previous clustering)."""
    from reidkit.search.grouping import group_store
    from reidkit.store.writer import Store

    with Store.open(db, writable=True) as store:
        report = group_store(store, options)
    typer.echo(
        f"{db}: {report.tracks} tracks -> {report.people} people ({report.people_seen_twice} seen in more than one "
        f"track, {report.cross_camera} by more than one camera); {report.cannot_link_pairs} cannot-link pairs; "
        f"{report.clustering.method}, model {report.clustering.model_id}, {report.seconds:.1f} s"
    )
    typer.echo(f"see them with `reidkit people --db {db}`; searches now build trajectories from identities")


def show_people(
    db: Annotated[Path, typer.Option("--db", help="store folder clustered by `reidkit cluster --db`")],
    person_id: Annotated[int | None, typer.Argument(help="one person: its tracks and trajectory")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
) -> None:
    """Who is who in a store: the people `reidkit cluster --db` found, or one person's tracks and trajectory."""
    from reidkit.cli.search_report import people_table, trajectory_table
    from reidkit.errors import StoreError
    from reidkit.search.identity import person_trajectory
    from reidkit.search.people import clustering, people, person, unclustered_tracks
    from reidkit.search.people_answers import people_answer, person_answer
    from reidkit.store.reader import StoreReader

    with StoreReader.open(db) as store:
        held = clustering(store)
        if held is None:
            raise StoreError(f"store {db} has not been clustered; group its tracks with `reidkit cluster --db {db}`")
        if person_id is None:
            if as_json:
                typer.echo(json.dumps(people_answer(store)))
                return
            everyone = people(store)
            typer.echo(f"{len(everyone)} people ({held.method}, {held.created_at})")
            typer.echo(people_table(everyone))
            unplaced = unclustered_tracks(store)
            if unplaced:
                typer.echo(f"note: {unplaced} track(s) ingested since belong to no person yet; rerun `reidkit "
                           f"cluster --db {db}`")
            return
        found = person(store, person_id)
        if found is None:
            raise StoreError(f"store {db} has no person {person_id}; list them with `reidkit people --db {db}`")
        if as_json:
            typer.echo(json.dumps(person_answer(store, found)))
            return
        visits, notes = person_trajectory(store, found)
    typer.echo(f"person {found.id}: {len(found.tracks)} tracks, cameras {', '.join(found.cameras)}, "
               f"confidence {found.confidence:.2f}")
    typer.echo("trajectory (its tracks in time order, one row per stay in a camera; sure: that it is this person):")
    typer.echo(trajectory_table(visits))
    for note in notes:
        typer.echo(f"note: {note}")

