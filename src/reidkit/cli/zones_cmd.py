"""``reidkit zones add|list|remove|report|heatmap --db STORE``: zones on a camera's frames, and who was in them for
how long. The work lives in ``reidkit.live`` (zones.py, zone_report.py, heatmap.py); zones are kept in the store
folder's live.sqlite, so they can be drawn while a live watcher holds the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from reidkit.live.zone_report import ZoneReport
    from reidkit.store.filters import SearchFilters
    from reidkit.store.reader import StoreReader

zones_app = typer.Typer(help="Zones on a camera's frames: entries, exits, dwell, counts and heat maps.",
                        no_args_is_help=True)
Db = Annotated[Path, typer.Option("--db", help="the store folder")]
Camera = Annotated[str, typer.Option("--camera", help="the camera's name in the store")]
After = Annotated[str | None, typer.Option("--after", help="only sightings at or after this ISO 8601 time")]
Before = Annotated[str | None, typer.Option("--before", help="only sightings at or before this time")]


def register(app: typer.Typer) -> None:
    """Add the ``zones`` group to the ``reidkit`` app."""
    app.add_typer(zones_app, name="zones")


def _store_folder(db: Path) -> Path:
    from reidkit.errors import StoreError

    if not db.is_dir():
        raise StoreError(f"--db {db}: no such store folder")
    return db


def _open_store(db: Path) -> StoreReader | None:
    """The store at ``db`` read-only, or None where the folder holds none yet (a live camera's zones may be drawn on
    its snapshot before its first commit)."""
    from reidkit.store.layout import DB_NAME
    from reidkit.store.reader import StoreReader

    return StoreReader.open(db) if (_store_folder(db) / DB_NAME).is_file() else None


@zones_app.command("add")
def add(
    db: Db,
    camera: Camera,
    name: Annotated[str | None, typer.Option("--name", help="the zone's name (with --polygon)")] = None,
    polygon: Annotated[str | None, typer.Option("--polygon", help="'[[x, y], ...]' in the frame's pixels")] = None,
    file: Annotated[Path | None, typer.Option("--file", help='zones.json: {"zones": [{"name", "polygon"}, ...]}')]
    = None,
) -> None:
    """Add zones to a camera (a zone of the same name is replaced)."""
    from reidkit.errors import ConfigError
    from reidkit.live.zones import Zone, camera_frame_size, check_zone_name, parse_polygon, save_zones, zones_from_file

    if (polygon is None) == (file is None):
        raise ConfigError("give either --name and --polygon, or --file")
    store = _open_store(db)
    try:
        size = camera_frame_size(store, db, camera, "--camera")
    finally:
        if store is not None:
            store.close()
    if file is not None:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--file {file}: cannot read it as JSON ({exc})") from None
        zones = zones_from_file(data, camera, f"--file {file.name}:", size)
    else:
        if name is None:
            raise ConfigError("--polygon needs --name")
        zones = [Zone(camera, check_zone_name(name, "--name"), parse_polygon(polygon, "--polygon", size))]
    save_zones(db, zones)
    typer.echo(f"camera {camera!r} ({size[0]}x{size[1]}): " + ", ".join(
        f"zone {zone.name!r} ({len(zone.polygon)} points)" for zone in zones) + " saved")


@zones_app.command("list")
def list_zones(
    db: Db,
    camera: Annotated[str | None, typer.Option("--camera", help="one camera's zones")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The zones of every camera, or of one."""
    from reidkit.live.zones import load_zones

    zones = load_zones(_store_folder(db), camera)
    if as_json:
        typer.echo(json.dumps({"zones": [zone.json() for zone in zones]}))
        return
    for zone in zones:
        typer.echo(f"{zone.camera}\t{zone.name}\t{json.dumps([[x, y] for x, y in zone.polygon])}")
    if not zones:
        typer.echo("no zones" + (f" on camera {camera!r}" if camera else ""))


@zones_app.command("remove")
def remove(db: Db, camera: Camera,
           name: Annotated[str, typer.Option("--name", help="the zone to remove")]) -> None:
    """Remove a zone from a camera."""
    from reidkit.errors import ConfigError
    from reidkit.live.zones import remove_zone

    if not remove_zone(_store_folder(db), camera, name):
        raise ConfigError(f"--name {name!r}: camera {camera!r} has no such zone; see `reidkit zones list --db {db}`")
    typer.echo(f"zone {name!r} of camera {camera!r} removed")


def _filters(camera: list[str] | None, after: str | None, before: str | None) -> SearchFilters:
    from reidkit.store.filters import SearchFilters
    from reidkit.store.rows import parse_time

    return SearchFilters(tuple(camera or ()), parse_time(after, "--after") if after else None,
                         parse_time(before, "--before") if before else None)


@zones_app.command("report")
def report(
    db: Db,
    camera: Annotated[list[str] | None, typer.Option("--camera", help="only this camera (repeat for more)")] = None,
    after: After = None,
    before: Before = None,
    bucket: Annotated[str, typer.Option("--bucket", help="counts per time bucket: 30s, 1m, 15m, 1h")] = "1m",
    by: Annotated[str, typer.Option("--by", help="auto (people where clustered), track or person")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="write the presence table here (CSV)")] = None,
    counts_csv: Annotated[Path | None, typer.Option("--counts-csv", help="write the counts per bucket here")] = None,
) -> None:
    """Per track or person: entries, exits and dwell per zone; and counts per zone over time."""
    from reidkit.errors import StoreError
    from reidkit.live.zone_output import report_csv, report_json
    from reidkit.live.zone_report import parse_bucket, zone_report
    from reidkit.live.zones import load_zones
    from reidkit.search.search import CLI_OPTIONS

    bucket_s = parse_bucket(bucket)
    filters = _filters(camera, after, before)
    zones = load_zones(_store_folder(db))
    if not zones:
        raise StoreError(f"--db {db} has no zones; add one with `reidkit zones add --db {db} --camera NAME ...`")
    store = _open_store(db)
    if store is None:
        raise StoreError(f"--db {db} holds no store yet; nothing to report")
    with store:
        found = zone_report(store, zones, filters, bucket_s, by, names={**CLI_OPTIONS, "by": "--by"})
    for path, table in ((csv_file, "presence"), (counts_csv, "counts")):
        if path is not None:
            path.write_text(report_csv(found, table), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report_json(found)))
        return
    typer.echo(_tables(found))


def _tables(found: ZoneReport) -> str:
    lines = [f"by {found.by}; dwell = sampled frames inside x sampling interval (every_n / fps)", "",
             f"{'camera':<12} {'zone':<16} {'subjects':>8} {'entries':>7} {'exits':>6} {'dwell_s':>9}"]
    lines += [f"{s.zone.camera:<12} {s.zone.name:<16} {s.subjects:>8} {s.entries:>7} {s.exits:>6} {s.dwell_s:>9.1f}"
              for s in found.summaries]
    lines += ["", f"{'camera':<12} {'zone':<16} {'subject':>7} {'id':>6} {'entries':>7} {'exits':>6} {'dwell_s':>9}  "
              "first inside -> last inside"]
    lines += [f"{p.camera:<12} {p.zone:<16} {p.subject:>7} {p.subject_id:>6} {p.entries:>7} {p.exits:>6} "
              f"{p.dwell_s:>9.1f}  {p.first_inside} -> {p.last_inside}" for p in found.presence]
    busy = [c for c in found.counts if c.present or c.entries or c.exits]
    lines += ["", f"counts per {found.bucket_s:g} s bucket (buckets with anyone in them; --json or --counts-csv for "
              "all):", f"{'camera':<12} {'zone':<16} {'bucket start':<29} {'present':>7} {'entries':>7} "
              f"{'exits':>6} {'dwell_s':>8}"]
    lines += [f"{c.camera:<12} {c.zone:<16} {c.bucket_start:<29} {c.present:>7} {c.entries:>7} {c.exits:>6} "
              f"{c.dwell_s:>8.1f}" for c in busy]
    lines += [f"note: {note}" for note in found.notes]
    return "\n".join(lines)


@zones_app.command("heatmap")
def heatmap(
    db: Db,
    camera: Camera,
    out: Annotated[Path, typer.Option("--out", help="the PNG to write")],
    after: After = None,
    before: Before = None,
    weighted: Annotated[bool, typer.Option("--weighted", help="weigh each sighting by the seconds it stands for")]
    = False,
) -> None:
    """A heat map of where people stood on a camera, over one of its frames, with its zones drawn (PNG)."""
    from reidkit.atomic_file import write_atomic
    from reidkit.errors import StoreError
    from reidkit.live.heatmap import heatmap_png
    from reidkit.live.zones import load_zones
    from reidkit.search.search import check_search_options

    filters = _filters([camera], after, before)
    store = _open_store(db)
    if store is None:
        raise StoreError(f"--db {db} holds no store yet; nothing to draw")
    with store:
        check_search_options(store, filters)
        png, frame, sightings = heatmap_png(store, db, camera, load_zones(db, camera), filters, weighted)
    write_atomic(out, png)
    height, width = frame.image.shape[:2]
    typer.echo(f"{out}: {sightings} sightings of camera {camera!r} over its {frame.source} frame ({width}x{height})")
