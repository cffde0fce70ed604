"""``reidkit search``: find a person in a store from a photo, a stored track or a description, and print the ranked
tracks and the trajectory (the work lives in ``reidkit.search``).

torch, FAISS and OpenVINO are imported inside the command so that ``reidkit --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reidkit.cli.ingest_options import CheckpointOption, DetectorOption, DeviceOption
from reidkit.cli.options import EmbedBackendOption
from reidkit.errors import ConfigError, StoreError

if TYPE_CHECKING:
    import numpy as np

    from reidkit.search.results import QueryDescription, SearchResult
    from reidkit.store.reader import StoreReader


def register(app: typer.Typer) -> None:
    """Add ``search`` to the ``reidkit`` app."""
    app.command("search")(search)


def search(
    db: Annotated[Path, typer.Option("--db", help="store folder built by `reidkit ingest`")],
    query: Annotated[
        Path | None,
        typer.Argument(help="person crop, or whole frame (JPEG/PNG); omit when using --track or --attr alone"),
    ] = None,
    box: Annotated[str | None, typer.Option("--box", help="x0,y0,x1,y1: the person in a whole-frame QUERY")] = None,
    track: Annotated[int | None, typer.Option("--track", help="search with a stored track instead of an image")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="tracks to return")] = 20,
    camera: Annotated[list[str] | None, typer.Option("--camera", help="only these cameras (repeatable)")] = None,
    after: Annotated[str | None, typer.Option("--after", help="only sightings at or after this ISO 8601 time")] = None,
    before: Annotated[str | None, typer.Option("--before", help="only sightings at or before this time")] = None,
    rerank: Annotated[bool, typer.Option("--rerank", help="k-reciprocal re-ranking of the hits")] = False,
    min_score: Annotated[
        float, typer.Option("--min-score", help="hits below this score are left out of the trajectory")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="also write a self-contained HTML page here")] = None,
    checkpoint: CheckpointOption = None,
    detector: DetectorOption = None,
    device: DeviceOption = "cpu",
    embed_backend: EmbedBackendOption = None,  # the store model's cached OpenVINO IR, else OpenVINO, else PyTorch
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attr",
            help="describe the person, NAME=VALUE (repeatable): e.g. --attr gender=female --attr upper=red "
            "--attr backpack=yes; alone, tracks ranked by the description's probability; with a photo or --track, "
            "hits ranked by appearance and description together (the store's model needs an attribute head)",
        ),
    ] = None,
) -> None:
    """Find where the cameras saw a person (from a photo, a stored track or a description): tracks ranked by
    similarity, and the person's trajectory."""
    from reidkit.search.results import result_json
    from reidkit.search.search import SearchFilters
    from reidkit.store.paths import refuse_inside_store
    from reidkit.store.reader import StoreReader
    from reidkit.store.rows import parse_time

    if query is not None and track is not None:
        raise ConfigError("give a QUERY image or --track ID, not both")
    if query is None and track is None and not attr:
        raise ConfigError("give a QUERY image, --track ID or a description (--attr NAME=VALUE)")
    if rerank and query is None and track is None:
        raise ConfigError("--rerank re-orders by appearance: it needs a QUERY image or --track, not --attr alone")
    if box is not None and query is None:
        raise ConfigError("--box needs a QUERY image (the whole frame the box lies in)")
    if html is not None:
        refuse_inside_store(db, html, "--html")
    filters = SearchFilters(
        cameras=tuple(camera or ()),
        after=parse_time(after, "--after") if after else None,
        before=parse_time(before, "--before") if before else None,
    )
    with StoreReader.open(db) as store:
        model = store.model
        result, query_image, description = _answer(
            store, query, track, attr or [], box, filters, top_k, rerank, min_score, html is not None,
            (checkpoint, detector, device, embed_backend),
        )
        if html is not None:
            from reidkit.viz.search_page import write_search_page

            try:
                write_search_page(html, result, store.root, query_image, f"{description.kind}: {description.source}")
            except OSError as exc:
                raise ConfigError(f"cannot write --html {html}: {exc.strerror or exc}") from exc
        if as_json:
            typer.echo(json.dumps(result_json(result, description, store.root, model.model_id if model else "")))
        else:
            _print_result(result, description, store.root, track is not None)
    if html is not None and not as_json:
        typer.echo(f"wrote {html}")


def _answer(
    store: StoreReader, query: Path | None, track: int | None, terms: list[str], box: str | None,
    filters: Any, top_k: int, rerank: bool, min_score: float, with_image: bool,
    embedding: tuple[str | None, str | None, str, str | None],
) -> tuple[Any, Any, Any]:
    """The search's result, its query picture (or None) and how the query is described: by photo or track
    (then narrowed by the description, if one is given), or by description alone."""
    from reidkit.search.describe import (
        CANDIDATES_PER_HIT,
        parse_description,
        rescore_by_description,
        search_by_description,
    )
    from reidkit.search.hit_attributes import describe
    from reidkit.search.results import QueryDescription
    from reidkit.search.search import check_search_options, search_store
    from reidkit.store.index_sync import CROP_INDEX

    check_search_options(store, filters, top_k, min_score)
    if store.model is None or store.index(CROP_INDEX).count == 0:
        raise StoreError(f"store {store.root} holds no person crops yet; ingest a video with people in it first")
    wanted = parse_description(store, terms, "--attr") if terms else None
    if query is None and track is None:
        assert wanted is not None
        result = search_by_description(store, wanted, top_k, filters, min_score)
        return result, None, QueryDescription("description", describe(wanted))
    if track is not None:
        feature, query_image, description = _track_query(store, track, with_image)
    else:
        assert query is not None
        feature, query_image, description = _photo_query(store, query, box, *embedding)
    depth = top_k * CANDIDATES_PER_HIT if wanted is not None else top_k
    result = search_store(
        store, feature, depth, filters, rerank, exclude_track=track, min_score=min_score, query_track=track
    )
    if wanted is not None:
        result = rescore_by_description(store, result, wanted, top_k)
        description = QueryDescription(description.kind, f"{description.source}, {describe(wanted)}",
                                       description.box, description.track_id)
    return result, query_image, description


def _track_query(store: StoreReader, track: int, with_image: bool) -> tuple[np.ndarray, Any, QueryDescription]:
    """A stored track's pooled feature; for a page, its clearest crop still on disk as the query picture."""
    from reidkit.search.query import load_query_image
    from reidkit.search.results import QueryDescription
    from reidkit.search.search import track_query

    feature = track_query(store, track)
    query_image = None
    if with_image:
        by_quality = sorted(store.track_detections(track), key=lambda row: -row.quality)
        present = [path for path in map(store.crop_file, by_quality) if path.is_file()]
        query_image = load_query_image(present[0]) if present else None
    return feature, query_image, QueryDescription("track", f"track {track}", track_id=track)


def _photo_query(
    store: StoreReader, query: Path, box: str | None, checkpoint: str | None, detector: str | None, device: str,
    embed_backend: str | None,
) -> tuple[np.ndarray, Any, QueryDescription]:
    """The feature of the person in a photo (the crop itself, the ``--box`` or the one person the detector finds),
    embedded by the store's model (or ``--checkpoint``, which must be the same model): by its cached OpenVINO IR
    where there is one, so that the default search loads no torch (``model_choice.choose_query_model``)."""
    from reidkit.inference.model_choice import choose_query_model
    from reidkit.search.query import load_query_image, parse_box, query_crop
    from reidkit.search.results import QueryDescription
    from reidkit.store.rows import normalise_rows

    image = load_query_image(query)
    parsed_box = parse_box(box) if box else None
    if device != "cpu":  # the CPU needs no check, and checking loads torch
        from reidkit.inference.device import resolve_device

        device = str(resolve_device(device, "--device"))
    crop = query_crop(image, str(query), parsed_box, lambda: _detector(detector, device))
    chosen = choose_query_model(checkpoint, store.model, device=device, backend=embed_backend)
    store.check_model(chosen.embedder.model_id, chosen.embedder.feature_dim, chosen.source)
    feature = normalise_rows(chosen.embedder([crop.image]))[0]
    return feature, crop.image, QueryDescription(crop.kind, str(query), box=crop.box)


def _detector(name: str | None, device: str) -> Any:
    """The query's detector, imported only for a whole frame without ``--box`` (OpenCV's import is not free)."""
    from reidkit.video.detector_choice import choose_detector

    return choose_detector(name, device)


def _print_result(result: SearchResult, description: QueryDescription, root: Path, by_track: bool) -> None:
    from reidkit.cli.search_report import hits_table, trajectory_heading, trajectory_table

    order = "k-reciprocal re-ranked" if result.reranked else "by best crop"
    if description.kind == "description":
        order = "by the description's probability"
    label = description.source if by_track else f"{description.kind} {description.source}"
    typer.echo(f"query: {label}; {result.candidates} tracks scored, {order}")
    typer.echo(hits_table(result.hits, root))
    typer.echo("\n" + trajectory_heading(result))
    typer.echo(trajectory_table(result.trajectory))
    for note in result.notes:
        typer.echo(f"note: {note}")
