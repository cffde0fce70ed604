"""``POST /search`` (a photo, or a frame and a box) and ``POST /search/track/{id}``: the same ranking as
``reidkit search`` on the same store, because they run the same functions (``search.query.query_crop``, the store's
model from ``choose_model``, ``search.search_store``, ``results.result_json``).

Every search is written to the audit log with its filters and the number of hits; the photo's file name, which
the client chooses freely, is shortened there (``audit.quoted``) so that a long one cannot push the filters out.
Refusals name the form fields (``box``, ``after``, ...), not the command line's flags. A box must lie inside the
photo: a box that reaches past its edge is refused, not silently cut down to another query.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from reidkit.search.describe import (
    CANDIDATES_PER_HIT,
    parse_description,
    rescore_by_description,
    search_by_description,
)
from reidkit.search.query import parse_box, query_crop
from reidkit.search.results import QueryDescription, SearchResult, result_json
from reidkit.search.search import FIELD_NAMES, SearchFilters, check_search_options, search_store, track_query
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError, decode_image, read_upload
from reidkit.service.schemas import SearchResponse
from reidkit.service.services import API, ERRORS, ItemId, Services, services, viewer
from reidkit.store.index_sync import CROP_INDEX
from reidkit.store.reader import StoreReader
from reidkit.store.rows import ModelInfo, parse_time

router = APIRouter(prefix=API, tags=["search"], responses=ERRORS)
MAX_TOP_K = 100

TopK = Annotated[int, Form(ge=1, le=MAX_TOP_K, description="tracks to return")]
Cameras = Annotated[list[str] | None, Form(description="only these cameras (repeat the field for several)")]
After = Annotated[str | None, Form(description="only sightings at or after this ISO 8601 time")]
Before = Annotated[str | None, Form(description="only sightings at or before this ISO 8601 time")]
Rerank = Annotated[bool, Form(description="k-reciprocal re-ranking of the hits")]
Description = Annotated[
    list[str] | None,
    Form(description="describe the person, NAME=VALUE (repeat the field): e.g. gender=female, upper=red; with a "
         "photo or a track, hits are ranked by appearance and description together"),
]


@router.post("/search", response_model=SearchResponse, summary="Find a person from a photo")
def search_photo(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    image: Annotated[UploadFile, File(description="a person crop, or a whole frame (JPEG, PNG or WebP)")],
    box: Annotated[str | None, Form(description="x0,y0,x1,y1: the person in a whole-frame image")] = None,
    top_k: TopK = 10,
    camera: Cameras = None,
    after: After = None,
    before: Before = None,
    rerank: Rerank = False,
    attributes: Description = None,
) -> dict[str, Any]:
    state = services(request)
    filters = _filters(camera, after, before)
    parsed_box = parse_box(box, "box") if box else None
    name = image.filename or "upload"
    pixels = decode_image(read_upload(image.file, state.settings.max_image_bytes, "image"),
                          state.settings.max_image_pixels)
    if parsed_box is not None:
        _check_inside(parsed_box, pixels, name)
    # The store's model as last checked; the store and the filters are checked again on the store's thread, right
    # before the search. Should the model have changed meanwhile (a reindex), the crop is embedded again with it.
    held = state.embedder.held or state.reader.call(lambda store: _checked(store, filters, top_k))
    crop = query_crop(pixels, f"image {audit.quoted(name)}", parsed_box, state.embedder.detector(), "box")
    for _ in range(3):
        try:
            result = state.embedder.embed_then(
                held, crop.image,
                lambda store, feature: _described(
                    store, attributes, top_k,
                    _search_photo(store, feature, held, _depth(top_k, attributes), filters, rerank)))
            break
        except _ModelChanged:
            state.embedder.forget()
            held = state.reader.call(lambda store: _checked(store, filters, top_k))
    else:
        raise ApiError(409, "model_changed", "the store's model kept changing during this search; send it again")
    description = QueryDescription(crop.kind, name + _terms(attributes), box=crop.box)
    box_used = "" if crop.box is None else " " + box_text(crop.box)
    target = f"image {audit.quoted(name)} ({crop.kind}{box_used}){_text(filters)}{_terms(attributes)}"
    audit.record(state.root, caller, "search", f"{target} top_k={top_k}{' rerank' if rerank else ''}",
                 len(result.hits))
    return api_result(state, result, description, held.model_id)


@router.post("/search/track/{track_id}", response_model=SearchResponse, summary="Find more of a stored track")
def search_track(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    track_id: ItemId,
    top_k: TopK = 10,
    camera: Cameras = None,
    after: After = None,
    before: Before = None,
    rerank: Rerank = False,
    attributes: Description = None,
) -> dict[str, Any]:
    state = services(request)
    filters = _filters(camera, after, before)

    def run(store: StoreReader | None) -> tuple[ModelInfo, SearchResult]:
        held = _checked(store, filters, top_k)
        assert store is not None
        if not store.tracks([track_id]):
            raise ApiError(404, "not_found", f"no track {track_id}; take a track id from an earlier search")
        found = _search(store, track_query(store, track_id), _depth(top_k, attributes), filters, rerank, track_id,
                        track_id)
        return held, _described(store, attributes, top_k, found)

    held, result = state.reader.call(run)
    audit.record(state.root, caller, "search.track", f"track {track_id}{_text(filters)}{_terms(attributes)} "
                 f"top_k={top_k}{' rerank' if rerank else ''}", len(result.hits))
    description = QueryDescription("track", f"track {track_id}{_terms(attributes)}", track_id=track_id)
    return api_result(state, result, description, held.model_id)


@router.post("/search/attributes", response_model=SearchResponse, summary="Find people from a description")
def search_description(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    attributes: Annotated[list[str], Form(description="describe the person, NAME=VALUE (repeat the field): e.g. "
                                          "gender=female, upper=red, backpack=yes")],
    top_k: TopK = 10,
    camera: Cameras = None,
    after: After = None,
    before: Before = None,
) -> dict[str, Any]:
    """Tracks ranked by the probability that they show the described person (the store's model must predict
    attributes); the same ranking as ``reidkit search --attr``."""
    state = services(request)
    filters = _filters(camera, after, before)

    def run(store: StoreReader | None) -> tuple[ModelInfo, SearchResult]:
        held = _checked(store, filters, top_k)
        assert store is not None
        wanted = parse_description(store, attributes, "attributes")
        return held, search_by_description(store, wanted, top_k, filters, names=FIELD_NAMES)

    held, result = state.reader.call(run)
    audit.record(state.root, caller, "search.attributes", f"{_terms(attributes).strip()}{_text(filters)} "
                 f"top_k={top_k}", len(result.hits))
    return api_result(state, result, QueryDescription("description", _terms(attributes).strip()), held.model_id)


def api_result(state: Services, result: SearchResult, query: QueryDescription, model_id: str) -> dict[str, Any]:
    """``result_json`` (what ``reidkit search --json`` prints) with links instead of the server's file paths."""
    payload = result_json(result, query, state.root, model_id, crop_paths=False)
    del payload["store"]
    for hit in payload["hits"]:
        hit.update(links(hit["detection_id"], hit["track_id"]))
        hit["person_url"] = None if hit["person_id"] is None else f"{API}/people/{hit['person_id']}"
    payload["notes"] = [state.scrub(note) for note in payload["notes"]]
    return payload


def links(detection_id: int, track_id: int | None = None) -> dict[str, str]:
    found = {"crop_url": f"{API}/crops/{detection_id}", "frame_url": f"{API}/frames/{detection_id}"}
    if track_id is not None:
        found["track_url"] = f"{API}/tracks/{track_id}"
    return found


def box_text(box: tuple[float, float, float, float]) -> str:
    return ",".join(f"{v:.0f}" for v in box)


def _check_inside(box: tuple[float, float, float, float], pixels: np.ndarray, name: str) -> None:
    height, width = pixels.shape[:2]
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ApiError(400, "bad_box", f"box {box_text(box)} lies outside image {audit.quoted(name)} ({width}x{height} "
                       "pixels), in part or whole; it must lie inside the image")


def _filters(camera: list[str] | None, after: str | None, before: str | None) -> SearchFilters:
    return SearchFilters(
        cameras=tuple(dict.fromkeys(camera or ())),  # a camera repeated is asked for once
        after=parse_time(after, "after") if after else None,
        before=parse_time(before, "before") if before else None,
    )


def _depth(top_k: int, terms: list[str] | None) -> int:
    """How many appearance hits a search asks for: more when a description will re-rank them."""
    return top_k * CANDIDATES_PER_HIT if terms else top_k


def _described(store: StoreReader | None, terms: list[str] | None, top_k: int, result: SearchResult) -> SearchResult:
    """A photo or track search's result re-ranked with the description in the ``attributes`` field, if one came."""
    if not terms:
        return result
    assert store is not None
    return rescore_by_description(store, result, parse_description(store, terms, "attributes"), top_k)


def _terms(terms: list[str] | None) -> str:
    """The description as the audit log and the query label show it (each term shortened like a file name)."""
    return "".join(f" {audit.quoted(term)}" for term in terms or ())


def _text(filters: SearchFilters) -> str:
    parts = [f" camera={name!r}" for name in filters.cameras]
    parts += [f" after={filters.after.isoformat()}"] if filters.after else []
    parts += [f" before={filters.before.isoformat()}"] if filters.before else []
    return "".join(parts)


def _checked(store: StoreReader | None, filters: SearchFilters, top_k: int) -> ModelInfo:
    """The store's model, once the store is known to hold crops and the filters to be answerable."""
    model = _model(store)
    assert store is not None
    check_search_options(store, filters, top_k, names=FIELD_NAMES)
    return model


def _model(store: StoreReader | None) -> ModelInfo:
    """The store's model, once the store is known to hold crops (else 409)."""
    model = None if store is None else store.model
    if store is None or model is None or store.index(CROP_INDEX).count == 0:
        raise ApiError(409, "empty_store", "the store holds no person crops yet; ingest a video with people in it")
    return model


class _ModelChanged(Exception):
    """The store's model is not the one the query was embedded with."""


def _search_photo(store: StoreReader | None, feature: np.ndarray, held: ModelInfo, top_k: int, filters: SearchFilters,
                  rerank: bool) -> SearchResult:
    if _model(store).model_id != held.model_id:
        raise _ModelChanged
    return _search(store, feature, top_k, filters, rerank, None, None)  # search_store checks the filters


def _search(
    store: StoreReader | None,
    feature: np.ndarray,
    top_k: int,
    filters: SearchFilters,
    rerank: bool,
    exclude: int | None,
    query_track: int | None,
) -> SearchResult:
    assert store is not None
    return search_store(store, feature, top_k, filters, rerank, exclude_track=exclude, query_track=query_track,
                        names=FIELD_NAMES)
