"""``GET /people`` and ``GET /people/{id}``: who is who in the store, as ``reidkit cluster --db`` grouped it.

A person is its tracks (each with the confidence that it belongs), the cameras that saw it and its trajectory
(``search.identity.person_trajectory``: impossible moves left out, a confidence per visit). A store never clustered
answers an empty list with ``clustering: null``, not an error: the page can offer the rest of the store all the
same. Like a track, viewing a person is written to the audit log; the list is not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from reidkit.search.people import person
from reidkit.search.people_answers import people_answer, person_answer
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.schemas import PeopleResponse, PersonResponse
from reidkit.service.services import API, ERRORS, ItemId, services, viewer
from reidkit.store.reader import StoreReader

router = APIRouter(prefix=API, tags=["people"], responses=ERRORS)


@router.get("/people", response_model=PeopleResponse, summary="The people the store's clustering found")
def list_people(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    def read(store: StoreReader | None) -> dict[str, Any]:
        if store is None:
            return {"clustering": None, "people": []}
        answer = people_answer(store)
        for summary in answer["people"]:
            summary["person_url"] = f"{API}/people/{summary['id']}"
        return answer

    return services(request).reader.call(read)


@router.get("/people/{person_id}", response_model=PersonResponse, summary="A person: tracks, cameras, trajectory")
def get_person(request: Request, caller: Annotated[Caller, Depends(viewer)], person_id: ItemId) -> dict[str, Any]:
    state = services(request)

    def read(store: StoreReader | None) -> dict[str, Any]:
        found = None if store is None else person(store, person_id)
        if store is None or found is None:
            raise ApiError(404, "not_found", f"no person {person_id}; list them with GET {API}/people")
        answer = person_answer(store, found)
        answer["person"]["person_url"] = f"{API}/people/{person_id}"
        for track in answer["tracks"]:
            track["track_url"] = f"{API}/tracks/{track['id']}"
        return answer

    payload = state.reader.call(read)
    cameras = ", ".join(payload["person"]["cameras"])
    audit.record(state.root, caller, "person", f"person {person_id} (cameras {cameras})", len(payload["tracks"]))
    return payload
