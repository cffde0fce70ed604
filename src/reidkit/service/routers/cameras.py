"""Live cameras over the API: an admin registers (``POST /cameras``), lists (``GET /cameras/live``) and removes
(``DELETE /cameras/{name}``) the cameras the service watches; any viewer reads their health (``GET /cameras/health``:
frames per second, lag, last frame, reconnects), which the web page's camera panel shows.

Registering starts the store's watcher process when none runs (``service.live_worker``); the watcher notices a
changed list by itself within seconds. A camera's URL is kept as given (the watcher needs its password) but never
answered: answers carry it without user name and password, a file by its name only. ``GET /cameras`` (the store's
cameras and their footage, ``routers.meta``) is unchanged. Registrations and removals are audited.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from reidkit.live.camera_db import (
    CameraHealth,
    RegisteredCamera,
    ensure_camera_tables,
    read_health,
    register_camera,
    registered_cameras,
    unregister_camera,
)
from reidkit.live.live_db import live_db_path, open_live_db
from reidkit.live.sources import check_camera_name, check_source, public_url
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.live_worker import ensure_live_worker
from reidkit.service.services import API, ERRORS, Services, admin, services, viewer

router = APIRouter(prefix=API, tags=["live cameras"], responses=ERRORS)
_STALE_S = 15.0  # a health row not rewritten for this long: its watcher is gone
CameraName = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class CameraRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="letters, digits, '_', '-', '.'")
    url: str = Field(min_length=1, max_length=2000, description="rtsp:// or http(s):// stream, /dev/video*, or a "
                     "video file on the server (played at its real frame rate)")
    every: int = Field(1, ge=1, le=1000, description="ingest every n-th frame")


class LiveCamera(BaseModel):
    name: str
    url: str  # without credentials; a file by its name
    every: int
    added_epoch: float
    added_by: str | None


class CameraHealthModel(BaseModel):
    camera: str
    state: str  # connecting, live, reconnecting, finished, failed, stopped, waiting, offline
    fps: float
    lag_s: float | None
    last_frame_epoch: float | None
    reconnects: int
    frames_dropped: int
    updated_epoch: float
    error: str | None


class LiveCamerasResponse(BaseModel):
    cameras: list[LiveCamera]
    watcher_running: bool


class CamerasHealthResponse(BaseModel):
    cameras: list[CameraHealthModel]


def shown_source(url: str) -> str:
    """What an answer may say of a source: a URL without credentials, a file by its name."""
    return public_url(url) if "://" in url else PurePath(url).name


def _camera_json(camera: RegisteredCamera) -> dict[str, Any]:
    return {"name": camera.name, "url": shown_source(camera.url), "every": camera.every_n,
            "added_epoch": camera.added_epoch, "added_by": camera.added_by}


def _health_json(state: Services, health: CameraHealth, now: float) -> dict[str, Any]:
    watching = health.state in ("connecting", "live", "reconnecting")
    status = "offline" if watching and now - health.updated_epoch > _STALE_S else health.state
    error = None if health.error is None else state.scrub_paths(" ".join(health.error.split()))[:300]
    return {"camera": health.camera, "state": status, "fps": health.fps, "lag_s": health.lag_s,
            "last_frame_epoch": health.last_frame_epoch, "reconnects": health.reconnects,
            "frames_dropped": health.frames_dropped, "updated_epoch": health.updated_epoch, "error": error}


@router.post("/cameras", status_code=201, response_model=LiveCamera,
             summary="Register a live camera (admin): the service ingests it continuously")
def add_camera(request: Request, caller: Annotated[Caller, Depends(admin)], body: CameraRequest) -> dict[str, Any]:
    state = services(request)
    name, url = body.name.strip(), body.url.strip()
    check_camera_name(name, "name")
    check_source(url, "url")
    with closing(open_live_db(state.root)) as live:
        ensure_camera_tables(live)
        new = register_camera(live, name, url, body.every, caller.name)
        (camera,) = [c for c in registered_cameras(live) if c.name == name]
    ensure_live_worker(state.root, state.settings.checkpoint)
    audit.record(state.root, caller, "camera.add" if new else "camera.replace",
                 f"camera {name!r}: {shown_source(url)} every {body.every}")
    return _camera_json(camera)


@router.get("/cameras/live", response_model=LiveCamerasResponse, summary="The registered live cameras (admin)")
def list_live_cameras(request: Request, caller: Annotated[Caller, Depends(admin)]) -> dict[str, Any]:
    state = services(request)
    if not live_db_path(state.root).is_file():  # no camera was ever registered: nothing to create for a read
        cameras, running = [], False
    else:
        with closing(open_live_db(state.root)) as live:
            ensure_camera_tables(live)
            cameras = registered_cameras(live)
        running = ensure_live_worker(state.root, state.settings.checkpoint) is not None
    audit.record(state.root, caller, "camera.list", f"{len(cameras)} live cameras")
    return {"cameras": [_camera_json(camera) for camera in cameras], "watcher_running": running}


@router.get("/cameras/health", response_model=CamerasHealthResponse,
            summary="Each live camera's health: frames per second, lag, last frame, reconnects")
def cameras_health(request: Request, caller: Annotated[Caller, Depends(viewer)]) -> dict[str, Any]:
    state = services(request)
    if not live_db_path(state.root).is_file():
        return {"cameras": []}
    with closing(open_live_db(state.root)) as live:
        ensure_camera_tables(live)
        registered = {camera.name for camera in registered_cameras(live)}
        healths = read_health(live)
    now = time.time()
    return {"cameras": [_health_json(state, h, now) for h in healths if h.camera in registered]}


@router.delete("/cameras/{name}", response_model=LiveCamera,
               summary="Stop watching a live camera (admin); its footage stays in the store")
def remove_camera(request: Request, caller: Annotated[Caller, Depends(admin)], name: CameraName) -> dict[str, Any]:
    state = services(request)
    if not live_db_path(state.root).is_file():
        raise ApiError(404, "not_found", f"no live camera {name!r}")
    with closing(open_live_db(state.root)) as live:
        ensure_camera_tables(live)
        found = [c for c in registered_cameras(live) if c.name == name]
        if not found:
            raise ApiError(404, "not_found", f"no live camera {name!r}")
        unregister_camera(live, name)
    audit.record(state.root, caller, "camera.remove", f"camera {name!r}: {shown_source(found[0].url)}")
    return _camera_json(found[0])
