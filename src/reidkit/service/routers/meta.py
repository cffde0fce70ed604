"""``GET /health`` (no token: for load balancers and monitors), ``GET /me``, ``GET /cameras``, ``GET /videos`` and
``GET /attributes`` (what a description may say: the page's attribute chips).

``/health`` tells a caller without a token only that the server is up: the version, the model and the store's
size would tell a stranger what is there. A caller with a valid token gets them too.

Videos are listed by file name only: the server's folders are none of a client's business.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

import reidkit
from reidkit.service.access import Caller
from reidkit.service.schemas import AttributesResponse, CamerasResponse, Health, Me, VideosResponse
from reidkit.service.services import API, ERRORS, anyone, services, viewer
from reidkit.store.reader import StoreReader

router = APIRouter(prefix=API, tags=["store"])


@router.get("/health", response_model=Health, response_model_exclude_unset=True,
            responses={status: ERRORS[status] for status in (401, 429)},  # a wrong token; too many wrong ones
            summary="Liveness; with a token also the version, the store's model and size")
def health(request: Request, caller: Annotated[Caller | None, Depends(anyone)]) -> dict[str, Any]:
    if caller is None:
        return {"status": "ok"}

    def read(store: StoreReader | None) -> dict[str, Any]:
        if store is None:
            return {"model_id": None, "counts": {"videos": 0, "tracks": 0, "detections": 0, "cameras": 0}}
        summary = store.summary()
        counts = {"videos": summary.videos, "tracks": summary.tracks, "detections": summary.detections,
                  "cameras": summary.cameras}
        return {"model_id": None if summary.model is None else summary.model.model_id, "counts": counts}

    return {"status": "ok", "version": reidkit.__version__, **services(request).reader.call(read)}


@router.get("/me", response_model=Me, responses=ERRORS, summary="Who the token is: its id, name and role")
def me(caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    """How the web page checks a token at log-in and learns which of its panels the role may use."""
    return {"token_id": caller.token_id, "name": caller.name, "role": caller.role.name}


@router.get("/cameras", response_model=CamerasResponse, responses=ERRORS, summary="The cameras and their footage")
def cameras(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    def read(store: StoreReader | None) -> list[dict[str, Any]]:
        if store is None:
            return []
        rows = store.db.execute(
            "SELECT c.name, COUNT(DISTINCT v.id), COUNT(t.id) FROM cameras c LEFT JOIN videos v ON v.camera_id = c.id "
            "LEFT JOIN tracks t ON t.video_id = v.id GROUP BY c.id ORDER BY c.name"
        )
        return [{"name": name, "videos": videos, "tracks": tracks} for name, videos, tracks in rows]

    return {"cameras": services(request).reader.call(read)}


@router.get("/attributes", response_model=AttributesResponse, responses=ERRORS,
            summary="The attributes a description may name (empty for a store without them)")
def attributes(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    def read(store: StoreReader | None) -> dict[str, Any]:
        schema = None if store is None else store.attribute_schema
        if schema is None:
            return {"schema_name": None, "groups": []}
        groups = [{"name": g.name, "values": list(g.values), "question": g.question} for g in schema.groups]
        return {"schema_name": schema.name, "groups": groups}

    return services(request).reader.call(read)


@router.get("/videos", response_model=VideosResponse, responses=ERRORS, summary="The ingested videos")
def videos(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    def read(store: StoreReader | None) -> list[dict[str, Any]]:
        return [
            {
                "id": v.id, "camera": v.camera, "file": PurePath(v.path).name, "status": v.status,
                "start_time": None if v.start_time is None else v.start_time.isoformat(), "fps": v.fps,
                "width": v.width, "height": v.height, "start_frame": v.start_frame, "end_frame": v.end_frame,
                "every_n": v.every_n, "last_committed_frame": v.last_committed_frame,
            }
            for v in ([] if store is None else store.videos())
        ]

    return {"videos": services(request).reader.call(read)}
