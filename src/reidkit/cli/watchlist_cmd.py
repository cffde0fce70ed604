"""``reidkit watchlist add|list|remove|alerts`` and ``reidkit watchlist webhook add|list|remove``: the people a live
watcher alerts on, and where the alerts are POSTed. The work lives in ``reidkit.live.watchlist`` / ``alerts`` /
``webhooks``; like token commands, each change is written to the service's audit log (as ``cli``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.ingest_options import DetectorOption
from reidkit.errors import ConfigError

DbOption = Annotated[Path, typer.Option("--db", help="store folder (its live.sqlite holds the watch list)")]
watchlist_app = typer.Typer(help="People of interest that live cameras alert on, and the alerts' webhooks.",
                            no_args_is_help=True)
webhook_app = typer.Typer(help="Where alerts are POSTed (signed with HMAC-SHA256, retried with back-off).",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(watchlist_app, name="watchlist")
    watchlist_app.add_typer(webhook_app, name="webhook")


@watchlist_app.command("add")
def add(
    db: DbOption,
    name: Annotated[str, typer.Option("--name", help="who this is (shown on every alert)")],
    photo: Annotated[Path | None, typer.Option("--photo", help="a person crop, or a whole frame (with --box, or "
                                               "one person the detector finds), as `reidkit search PHOTO` takes")]
    = None,
    track: Annotated[int | None, typer.Option("--track", help="a stored track id (from a search's hits)")] = None,
    box: Annotated[str | None, typer.Option("--box", help="x0,y0,x1,y1: the person in a whole-frame --photo")] = None,
    note: Annotated[str, typer.Option("--note", help="why they are watched, for whoever sees the alert")] = "",
    detector: DetectorOption = None,
) -> None:
    """Enrol a person from a photo or a stored track."""
    from reidkit.live.watchlist import check_person_name, enrol, photo_feature, track_feature
    from reidkit.video.detector_choice import choose_detector
    from reidkit.search.query import load_query_image, parse_box
    from reidkit.store.reader import StoreReader

    if (photo is None) == (track is None):
        raise ConfigError("pass either --photo PATH or --track ID (one of them)")
    if box is not None and photo is None:
        raise ConfigError("--box needs --photo")
    name, note = check_person_name(name, note)
    parsed_box = parse_box(box) if box else None
    image = load_query_image(photo) if photo is not None else None
    with StoreReader.open(db) as store:
        held = store.model
        if held is None:
            raise ConfigError(f"store {db} holds no features yet; ingest or watch a camera before enrolling anyone")
        if track is not None:
            feature, source = track_feature(store, track), f"track {track}"
        else:
            assert image is not None and photo is not None
            feature, kind = photo_feature(store, image, str(photo), parsed_box, lambda: choose_detector(detector))
            source = f"photo {photo.name!r} ({kind})"
        person = enrol(db, name, note, feature, held.model_id, source, track)
    _audit(db, "watchlist.add", f"person {person.id} ({name!r}) from {source}")
    typer.echo(f"enrolled person {person.id} ({name}) from {source}; a running `reidkit watch` alerts on them from "
               "its next segment")


@watchlist_app.command("list")
def list_people(
    db: DbOption,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Everyone on the watch list (people enrolled under another model than the store's are marked stale)."""
    from reidkit.live.watchlist import enrolled
    from reidkit.store.reader import StoreReader

    people = enrolled(_existing(db))
    with StoreReader.open(db) as store:
        current = None if store.model is None else store.model.model_id
    if as_json:
        typer.echo(json.dumps({"people": [{**asdict(p), "stale": p.model_id != current} for p in people]}))
        return
    if not people:
        typer.echo(f"nobody on the watch list of {db}; enrol with `reidkit watchlist add --db {db} --name ...`")
        return
    for person in people:
        stale = "  STALE: another model's feature, never matched" if person.model_id != current else ""
        note = f"  ({person.note})" if person.note else ""
        typer.echo(f"{person.id:>5}  {person.name}{note}  from {person.source}, {person.created_at} by "
                   f"{person.created_by}{stale}")


@watchlist_app.command("remove")
def remove_person(db: DbOption, person_id: Annotated[int, typer.Argument(help="the id from `watchlist list`")]) -> None:
    """Take a person off the watch list (their past alerts stay)."""
    from reidkit.live.watchlist import remove

    person = remove(_existing(db), person_id)
    _audit(db, "watchlist.remove", f"person {person.id} ({person.name!r})")
    typer.echo(f"removed person {person.id} ({person.name}) from the watch list")


@watchlist_app.command("alerts")
def list_alerts(
    db: DbOption,
    limit: Annotated[int, typer.Option("--limit", help="how many, newest first")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The newest alerts, with their webhook deliveries."""
    from reidkit.live.alerts import alert_json, recent_alerts
    from reidkit.live.webhooks import attempts

    if not 1 <= limit <= 10_000:
        raise ConfigError(f"--limit {limit} must be from 1 to 10000")
    found = [(alert_json(a), [asdict(t) for t in attempts(db, a.id)]) for a in recent_alerts(_existing(db), limit)]
    if as_json:
        typer.echo(json.dumps({"alerts": [{**alert, "deliveries": sent} for alert, sent in found]}))
        return
    for alert, sent in found:
        delivered = sum(1 for attempt in sent if attempt["delivered"])
        typer.echo(f"{alert['id']:>5}  {alert['raised_at']}  {alert['person']['name']} on {alert['camera']}, track "
                   f"{alert['track_id']}, score {alert['score']:.3f}, {alert['latency_s']:.2f} s after the first "
                   f"frame; {len(sent)} webhook attempts, {delivered} delivered")


@webhook_app.command("add")
def webhook_add(
    db: DbOption,
    url: Annotated[str, typer.Option("--url", help="http(s) URL that alerts are POSTed to")],
    secret: Annotated[str | None, typer.Option("--secret", help="the HMAC key (default: one is made and shown "
                                               "once)")] = None,
) -> None:
    """Add a webhook; its secret signs every body (X-Reidkit-Signature: sha256=<hex>)."""
    from reidkit.live.webhooks import add_webhook

    hook, made = add_webhook(_existing(db), url, secret)
    _audit(db, "webhook.add", f"webhook {hook.id} ({hook.url!r})")
    typer.echo(f"webhook {hook.id}: {hook.url}")
    if secret is None:
        typer.echo(f"secret (shown only now; the receiver checks signatures with it): {made}")


@webhook_app.command("list")
def webhook_list(db: DbOption) -> None:
    """The webhooks (their secrets are never shown again)."""
    from reidkit.live.webhooks import list_webhooks

    hooks = list_webhooks(_existing(db))
    if not hooks:
        typer.echo(f"no webhooks; add one with `reidkit watchlist webhook add --db {db} --url ...`")
    for hook in hooks:
        typer.echo(f"{hook.id:>5}  {hook.url}  added {hook.created_at} by {hook.created_by}")


@webhook_app.command("remove")
def webhook_remove(db: DbOption, webhook_id: Annotated[int, typer.Argument(help="the id from `webhook list`")]
                   ) -> None:
    """Remove a webhook (its delivery records stay)."""
    from reidkit.live.webhooks import remove_webhook

    hook = remove_webhook(_existing(db), webhook_id)
    _audit(db, "webhook.remove", f"webhook {hook.id} ({hook.url!r})")
    typer.echo(f"removed webhook {hook.id} ({hook.url})")


def _existing(db: Path) -> Path:
    """``db`` once it is known to hold a store (live.sqlite is only made beside one)."""
    from reidkit.errors import StoreError
    from reidkit.store.layout import DB_NAME

    if not (db / DB_NAME).is_file():
        raise StoreError(f"--db {db} holds no person-search store; build one with `reidkit ingest` or `reidkit watch`")
    return db


def _audit(db: Path, action: str, target: str) -> None:
    from reidkit.service.audit import record_cli
    from reidkit.service.service_db import connect

    record_cli(connect(db), action, target)
