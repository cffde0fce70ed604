"""The watch list over HTTP: ``GET /watchlist`` (viewers), enrolment from a photo (``POST /watchlist``) or a stored
track (``POST /watchlist/track/{id}``) and ``DELETE /watchlist/{id}`` (operators, who also ingest and delete
footage), and the alerts' webhooks, ``GET|POST /webhooks`` and ``DELETE /webhooks/{id}`` (admins: a webhook sends
surveillance data off the server).

A photo is taken as ``POST /search`` takes one (the gate's role check before the body, the size and pixel limits,
the same crop rules, the store's model, batched with the searches) and so is a box. Everything is written to the
audit log. A webhook's secret is answered once, when it is made, and never again (``live.webhooks``).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel

from reidkit.errors import ConfigError
from reidkit.live.watchlist import check_person_name, enrol, enrolled, remove, track_feature
from reidkit.live.webhooks import add_webhook, list_webhooks, remove_webhook, webhooks_db
from reidkit.search.query import parse_box, query_crop
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError, decode_image, read_upload
from reidkit.service.routers.search import box_text
from reidkit.service.services import API, ERRORS, ItemId, admin, operator, services, viewer
from reidkit.store.index_sync import CROP_INDEX
from reidkit.store.reader import StoreReader
from reidkit.store.rows import ModelInfo

router = APIRouter(prefix=API, tags=["watch list"], responses=ERRORS)
Name = Annotated[str, Form(min_length=1, max_length=100, description="who this is (shown on every alert)")]
Note = Annotated[str, Form(max_length=500, description="why they are watched")]


class EnrolledPerson(BaseModel):
    id: int
    name: str
    note: str
    source: str
    track_id: int | None
    created_at: str
    created_by: str
    stale: bool  # enrolled under another model than the store's: never matched


class WatchlistResponse(BaseModel):
    people: list[EnrolledPerson]


class WebhookInfo(BaseModel):
    id: int
    url: str
    created_at: str
    created_by: str
    attempts: int
    delivered: int


class WebhooksResponse(BaseModel):
    webhooks: list[WebhookInfo]


class NewWebhook(BaseModel):
    webhook: WebhookInfo
    secret: str  # shown this once


class WebhookRequest(BaseModel):
    url: str
    secret: str | None = None


@router.get("/watchlist", response_model=WatchlistResponse, summary="Everyone on the watch list")
def list_watchlist(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    state = services(request)
    current = state.reader.call(lambda store: None if store is None or store.model is None else store.model.model_id)
    people = [_person(p, current) for p in enrolled(state.root)]
    audit.record(state.root, caller, "watchlist", "list", len(people))
    return {"people": people}


@router.post("/watchlist", response_model=EnrolledPerson, summary="Enrol a person from a photo (operator)")
def enrol_photo(
    request: Request,
    caller: Annotated[Caller, Depends(operator)],
    name: Name,
    image: Annotated[UploadFile, File(description="a person crop, or a whole frame (JPEG, PNG or WebP)")],
    note: Note = "",
    box: Annotated[str | None, Form(description="x0,y0,x1,y1: the person in a whole-frame image")] = None,
) -> dict[str, Any]:
    state = services(request)
    name, note = _checked_name(name, note)
    parsed_box = parse_box(box, "box") if box else None
    file_name = image.filename or "upload"
    pixels = decode_image(read_upload(image.file, state.settings.max_image_bytes, "image"),
                          state.settings.max_image_pixels)
    held = state.embedder.held or state.reader.call(_model)
    crop = query_crop(pixels, f"image {audit.quoted(file_name)}", parsed_box, state.embedder.detector(), "box")
    for _ in range(3):
        feature = state.embedder.embed_then(held, crop.image, lambda store, vector: _same_model(store, held, vector))
        if feature is not None:
            break
        state.embedder.forget()  # the store's model changed (a reindex): embed again with the new one
        held = state.reader.call(_model)
    else:
        raise ApiError(409, "model_changed", "the store's model kept changing; send the photo again")
    box_used = "" if crop.box is None else " " + box_text(crop.box)
    source = f"photo {audit.quoted(file_name)} ({crop.kind}{box_used})"
    person = enrol(state.root, name, note, feature, held.model_id, source, None, caller.name)
    audit.record(state.root, caller, "watchlist.add", f"person {person.id} ({audit.quoted(name)}) from {source}")
    return _person(person, held.model_id)


@router.post("/watchlist/track/{track_id}", response_model=EnrolledPerson,
             summary="Enrol a person from a stored track (operator)")
def enrol_track(request: Request, caller: Annotated[Caller, Depends(operator)], track_id: ItemId, name: Name,
                note: Note = "") -> dict[str, Any]:
    state = services(request)
    name, note = _checked_name(name, note)

    def read(store: StoreReader | None) -> tuple[ModelInfo, np.ndarray]:
        held = _model(store)
        assert store is not None
        try:
            return held, track_feature(store, track_id, "track")
        except ConfigError:
            raise ApiError(404, "not_found", f"no track {track_id}; take a track id from a search's hits") from None

    held, feature = state.reader.call(read)
    person = enrol(state.root, name, note, feature, held.model_id, f"track {track_id}", track_id,
                   caller.name)
    audit.record(state.root, caller, "watchlist.add", f"person {person.id} ({audit.quoted(name)}) from track "
                 f"{track_id}")
    return _person(person, held.model_id)


@router.delete("/watchlist/{person_id}", response_model=EnrolledPerson,
               summary="Take a person off the watch list (operator; their alerts stay)")
def remove_person(request: Request, caller: Annotated[Caller, Depends(operator)], person_id: ItemId
                  ) -> dict[str, Any]:
    state = services(request)
    try:
        person = remove(state.root, person_id, "person")
    except ConfigError as missing:
        raise ApiError(404, "not_found", str(missing)) from None
    audit.record(state.root, caller, "watchlist.remove", f"person {person.id} ({audit.quoted(person.name)})")
    current = state.reader.call(lambda store: None if store is None or store.model is None else store.model.model_id)
    return _person(person, current)


@router.get("/webhooks", response_model=WebhooksResponse, summary="Where alerts are POSTed (admin)")
def get_webhooks(request: Request, caller: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
    state = services(request)
    hooks = [_webhook(state.root, hook) for hook in list_webhooks(state.root)]
    audit.record(state.root, caller, "webhooks", "list", len(hooks))
    return {"webhooks": hooks}


@router.post("/webhooks", response_model=NewWebhook, summary="Add a webhook; its secret is answered only now (admin)")
def post_webhook(request: Request, caller: Annotated[Caller, Depends(admin)], body: WebhookRequest
                 ) -> dict[str, Any]:
    state = services(request)
    try:
        hook, secret = add_webhook(state.root, body.url, body.secret, caller.name, "url")
    except ConfigError as refused:
        raise ApiError(400, "bad_request", str(refused).replace("--secret", "secret")) from None
    audit.record(state.root, caller, "webhook.add", f"webhook {hook.id} ({audit.quoted(hook.url)})")
    return {"webhook": _webhook(state.root, hook), "secret": secret}


@router.delete("/webhooks/{webhook_id}", response_model=WebhookInfo, summary="Remove a webhook (admin)")
def delete_webhook(request: Request, caller: Annotated[Caller, Depends(admin)], webhook_id: ItemId
                   ) -> dict[str, Any]:
    state = services(request)
    try:
        hook = remove_webhook(state.root, webhook_id, "webhook")
    except ConfigError as missing:
        raise ApiError(404, "not_found", str(missing)) from None
    audit.record(state.root, caller, "webhook.remove", f"webhook {hook.id} ({audit.quoted(hook.url)})")
    return _webhook(state.root, hook)


def _checked_name(name: str, note: str) -> tuple[str, str]:
    try:
        return check_person_name(name, note, "name", "note")
    except ConfigError as refused:
        raise ApiError(400, "bad_request", str(refused)) from None


def _model(store: StoreReader | None) -> ModelInfo:
    """The store's model, once it holds crops (else 409: there is nothing to compare a person with)."""
    model = None if store is None else store.model
    if store is None or model is None or store.index(CROP_INDEX).count == 0:
        raise ApiError(409, "empty_store", "the store holds no person crops yet; ingest or watch a camera first")
    return model


def _same_model(store: StoreReader | None, held: ModelInfo, vector: np.ndarray) -> np.ndarray | None:
    """``vector`` while the store still holds ``held``'s features, else None."""
    return vector if _model(store).model_id == held.model_id else None


def _person(person: Any, current_model: str | None) -> dict[str, Any]:
    found = asdict(person)
    found["stale"] = found.pop("model_id") != current_model
    return found


def _webhook(root: Any, hook: Any) -> dict[str, Any]:
    with closing(webhooks_db(root)) as connection:
        tried, delivered = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(delivered), 0) FROM webhook_attempts WHERE webhook_id = ?", (hook.id,)
        ).fetchone()
    return {"id": hook.id, "url": hook.url, "created_at": hook.created_at, "created_by": hook.created_by,
            "attempts": int(tried), "delivered": int(delivered)}
