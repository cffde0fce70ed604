"""``GET /people`` and ``GET /people/{id}``: who is who in the store, as ``reidkit cluster --db`` grouped it.

A person is its tracks (each with the confidence that it belongs), the cameras that saw it and its trajectory
(``search.identity.person_trajectory``: impossible moves left out, a confidence per visit). A store never clustered
answers an empty list with ``clustering: null``, not an error: the page can offer the rest of the store all the
same. Like a track, viewing a person is written to the audit log; the list is not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from reidkit.search.identity import person_trajectory
from reidkit.search.people import Person, clustering, people, person, unclustered_tracks
from reidkit.search.results import visit_json
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.schemas import PeopleResponse, PersonResponse
from reidkit.service.services import API, ERRORS, ItemId, services, viewer
from reidkit.store.reader import StoreReader
from reidkit.store.rows import epoch_seconds

router = APIRouter(prefix=API, tags=["people"], responses=ERRORS)


@router.get("/people", response_model=PeopleResponse, summary="The people the store's clustering found")
def list_people(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    def read(store: StoreReader | None) -> dict[str, Any]:
        held = None if store is None else clustering(store)
        if store is None or held is None:
            return {"clustering": None, "people": []}
        return {
            "clustering": {
                "model_id": held.model_id, "method": held.method, "params": held.params,
                "created_at": held.created_at, "unclustered_tracks": unclustered_tracks(store),
            },
            "people": [_summary(found) for found in people(store)],
        }

    return services(request).reader.call(read)


@router.get("/people/{person_id}", response_model=PersonResponse, summary="A person: tracks, cameras, trajectory")
def get_person(request: Request, caller: Annotated[Caller, Depends(viewer)], person_id: ItemId) -> dict[str, Any]:
    state = services(request)

    def read(store: StoreReader | None) -> dict[str, Any]:
        found = None if store is None else person(store, person_id)
        if store is None or found is None:
            raise ApiError(404, "not_found", f"no person {person_id}; list them with GET {API}/people")
        visits, notes = person_trajectory(store, found)
        return {
            "person": _summary(found),
            "tracks": [
                {
                    "id": track.id, "camera": track.camera, "video_id": track.video_id,
                    "first_seen": _iso(track.first_seen), "last_seen": _iso(track.last_seen),
                    "first_time_s": round(track.first_time_s, 3), "last_time_s": round(track.last_time_s, 3),
                    "num_crops": track.num_crops, "confidence": round(found.track_confidence[track.id], 4),
                    "track_url": f"{API}/tracks/{track.id}",
                }
                for track in found.tracks
            ],
            "trajectory": [visit_json(visit) for visit in visits],
            "notes": notes,
        }

    payload = state.reader.call(read)
    cameras = ", ".join(payload["person"]["cameras"])
    audit.record(state.root, caller, "person", f"person {person_id} (cameras {cameras})", len(payload["tracks"]))
    return payload


def _summary(found: Person) -> dict[str, Any]:
    timed = [track for track in found.tracks if track.last_seen is not None]
    last = max(timed, key=lambda t: epoch_seconds(t.last_seen), default=None)  # type: ignore[arg-type]
    return {
        "id": found.id, "confidence": round(found.confidence, 4), "tracks": len(found.tracks),
        "cameras": found.cameras, "first_seen": _iso(found.tracks[0].first_seen),
        "last_seen": None if last is None else _iso(last.last_seen),
        "person_url": f"{API}/people/{found.id}",
    }


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()
