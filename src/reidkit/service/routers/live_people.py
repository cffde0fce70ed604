"""``GET /live/people``: people linked online across live cameras (``reidkit.live.online_people``), and where they are.

The watcher links each committed live track to a person as it arrives; these routes read that: who was seen lately
and where they are now (their newest sighting), a person's live trajectory, and the person of a track (from a search
hit: "where is this person now"). The store's batch clustering (``/people``) is a different, slower answer over all
the footage; a store never watched answers an empty list. Every read is audited (who was seen where is the
sensitive answer here).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from reidkit.errors import StoreError
from reidkit.live.people_now import LivePerson, LiveTrack, person_of_track, recent_people, trajectory
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.services import API, ERRORS, ItemId, services, viewer

router = APIRouter(prefix=API, tags=["live people"], responses=ERRORS)


class LivePersonTrack(BaseModel):
    track_id: int
    camera: str
    first_seen: str = Field(description="ISO 8601, UTC")
    last_seen: str
    similarity: float | None = Field(description="to the person when the track joined them; null: their first track")
    crop_url: str
    track_url: str


class LivePersonSummary(BaseModel):
    id: int
    first_seen: str
    last_seen: str = Field(description="the newest sighting: where the person is now")
    camera_now: str
    track_now: int
    tracks: int
    person_url: str


class LivePeopleResponse(BaseModel):
    people: list[LivePersonSummary]


class LivePersonResponse(BaseModel):
    person: LivePersonSummary
    cameras: list[str]
    trajectory: list[LivePersonTrack] = Field(description="the person's tracks in time order")


@router.get("/live/people", response_model=LivePeopleResponse, summary="People seen lately on live cameras")
def list_live_people(
    request: Request, caller: Annotated[Caller, Depends(viewer)],
    within_s: Annotated[float | None, Query(gt=0, le=10 * 365 * 86400, description="seen within this many seconds "
                                            "of now (default: everyone)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    state = services(request)
    since = None if within_s is None else time.time() - within_s
    found = recent_people(state.root, since, limit)
    audit.record(state.root, caller, "live_people", f"live people seen within {within_s or 'any time'} s", len(found))
    return {"people": [_summary(p) for p in found]}


@router.get("/live/people/{person_id}", response_model=LivePersonResponse,
            summary="A live person: where now, and their trajectory across cameras")
def get_live_person(request: Request, caller: Annotated[Caller, Depends(viewer)], person_id: ItemId) -> dict[str, Any]:
    state = services(request)
    try:
        found, tracks = trajectory(state.root, person_id)
    except StoreError:
        raise ApiError(404, "not_found", f"no live person {person_id}; list them with GET {API}/live/people") from None
    answer = _person_answer(found, tracks)
    audit.record(state.root, caller, "live_person", f"live person {person_id} (cameras {', '.join(answer['cameras'])})",
                 len(tracks))
    return answer


@router.get("/live/tracks/{track_id}/person", response_model=LivePersonResponse,
            summary="The live person of a track, and where they are now")
def get_track_person(request: Request, caller: Annotated[Caller, Depends(viewer)], track_id: ItemId) -> dict[str, Any]:
    state = services(request)
    try:
        found = person_of_track(state.root, track_id)
    except StoreError as error:
        raise ApiError(404, "not_found", str(error)) from None
    _, tracks = trajectory(state.root, found.id)
    audit.record(state.root, caller, "live_person", f"live person {found.id} of track {track_id}", len(tracks))
    return _person_answer(found, tracks)


def _person_answer(person: LivePerson, tracks: list[LiveTrack]) -> dict[str, Any]:
    return {"person": _summary(person), "cameras": sorted({t.camera for t in tracks}),
            "trajectory": [_track_json(t) for t in tracks]}


def _summary(person: LivePerson) -> dict[str, Any]:
    return {"id": person.id, "first_seen": _iso(person.first_epoch), "last_seen": _iso(person.last_epoch),
            "camera_now": person.last_camera, "track_now": person.last_track_id, "tracks": person.num_tracks,
            "person_url": f"{API}/live/people/{person.id}"}


def _track_json(track: LiveTrack) -> dict[str, Any]:
    return {"track_id": track.track_id, "camera": track.camera, "first_seen": _iso(track.first_epoch),
            "last_seen": _iso(track.last_epoch),
            "similarity": None if track.similarity is None else round(track.similarity, 4),
            "crop_url": f"{API}/crops/{track.best_detection_id}", "track_url": f"{API}/tracks/{track.track_id}"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()
