"""Zones over the API: ``GET``/``PUT``/``DELETE /zones``, ``GET /zones/report`` (JSON or CSV), ``GET /zones/heatmap``
(PNG) and ``GET /zones/frame`` (a camera's frame to draw zones on, JPEG).

Viewers read zones, reports, heat maps and frames; operators and admins draw and remove zones. The camera (and for a
change, the zone's name) travel as query fields or in the JSON body, never in the path: camera names are whatever
ingest was given, slashes included. Zones are kept in the store folder's live.sqlite (``reidkit.live.zones``), which
a live watcher holding the store's writer lock does not block. The numbers are ``reidkit.live.zone_report``'s, the
same as ``reidkit zones report``. Every access is written to the audit log, reads included: a report tells who
stood where and for how long.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel, Field

from reidkit.errors import StoreError
from reidkit.live.heatmap import camera_frame, foot_points, heatmap_over, latest_video
from reidkit.live.zone_output import report_csv, report_json
from reidkit.live.zone_report import ZoneReport, parse_bucket, zone_report
from reidkit.live.zones import Zone, camera_frame_size, check_zone_name, load_zones, parse_polygon, remove_zone, save_zones
from reidkit.search.search import FIELD_NAMES, check_search_options
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.services import API, ERRORS, Services, operator, services, viewer
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import parse_time

router = APIRouter(prefix=f"{API}/zones", tags=["zones"], responses=ERRORS)
NAMES = {**FIELD_NAMES, "by": "by", "bucket": "bucket"}
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG image"}}
REPORT = {200: {"content": {"text/csv": {}}, "description": "the report (JSON), or one of its tables as CSV"}}

CameraField = Annotated[str, Query(min_length=1, max_length=200, description="the camera's name in the store")]
After = Annotated[str | None, Query(description="only sightings at or after this ISO 8601 time")]
Before = Annotated[str | None, Query(description="only sightings at or before this ISO 8601 time")]


class ZoneBody(BaseModel):
    camera: str
    name: str
    polygon: list[list[float]] = Field(description="[[x, y], ...] in the camera's frame pixels")


class ZonesResponse(BaseModel):
    zones: list[ZoneBody]


class ZonePut(BaseModel):
    camera: str = Field(min_length=1, max_length=200)
    name: str = Field(description="1 to 100 printable characters; a zone of this name on the camera is replaced")
    polygon: list[Any] = Field(description="[[x, y], ...]: at least 3 points inside the frame, no crossing edges")


class ZoneSaved(BaseModel):
    zone: ZoneBody
    frame: dict[str, int]


class ZoneReportResponse(BaseModel):
    by: str
    bucket_s: float
    dwell: str
    zones: list[dict[str, Any]]
    presence: list[dict[str, Any]]
    counts: list[dict[str, Any]]
    notes: list[str]


@router.get("", response_model=ZonesResponse, summary="The zones of every camera, or of one")
def list_zones(request: Request, caller: Annotated[Caller, Depends(viewer)],
               camera: Annotated[str | None, Query(max_length=200, description="one camera's zones")] = None,
               ) -> dict[str, Any]:
    state = services(request)
    zones = load_zones(state.root, camera)
    audit.record(state.root, caller, "zones", "all cameras" if camera is None else f"camera {audit.quoted(camera)}",
                 len(zones))
    return {"zones": [zone.json() for zone in zones]}


@router.put("", response_model=ZoneSaved, summary="Draw a zone on a camera (replacing one of the same name)")
def put_zone(request: Request, caller: Annotated[Caller, Depends(operator)], body: ZonePut) -> dict[str, Any]:
    state = services(request)
    size = state.reader.call(lambda store: camera_frame_size(store, state.root, body.camera, "camera"))
    zone = Zone(body.camera, check_zone_name(body.name, "name"), parse_polygon(body.polygon, "polygon", size))
    save_zones(state.root, [zone])
    audit.record(state.root, caller, "zone.put", f"camera {audit.quoted(zone.camera)} zone {audit.quoted(zone.name)} "
                 f"({len(zone.polygon)} points)")
    return {"zone": zone.json(), "frame": {"width": size[0], "height": size[1]}}


@router.delete("", response_model=ZonesResponse, summary="Remove a zone; answers the camera's zones left")
def delete_zone(request: Request, caller: Annotated[Caller, Depends(operator)], camera: CameraField,
                name: Annotated[str, Query(min_length=1, max_length=200, description="the zone's name")],
                ) -> dict[str, Any]:
    state = services(request)
    if not remove_zone(state.root, camera, name):
        raise ApiError(404, "not_found", f"camera {camera!r} has no zone {name!r}")
    audit.record(state.root, caller, "zone.delete", f"camera {audit.quoted(camera)} zone {audit.quoted(name)}")
    return {"zones": [zone.json() for zone in load_zones(state.root, camera)]}


def _filters(cameras: list[str], after: str | None, before: str | None) -> SearchFilters:
    return SearchFilters(tuple(cameras), parse_time(after, "after") if after else None,
                         parse_time(before, "before") if before else None)


@router.get("/report", response_model=ZoneReportResponse, responses=REPORT,
            summary="Entries, exits and dwell per zone and track or person; counts per time bucket")
def report(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    camera: Annotated[list[str] | None, Query(description="only these cameras (repeat); default: all with zones")]
    = None,
    after: After = None,
    before: Before = None,
    bucket: Annotated[str, Query(max_length=20, description="counts per bucket: 30s, 1m, 15m, 1h")] = "1m",
    by: Annotated[Literal["auto", "track", "person"], Query(description="auto: people where clustered")] = "auto",
    format: Annotated[Literal["json", "csv"], Query(description="csv: one table (see table)")] = "json",
    table: Annotated[Literal["presence", "counts"], Query(description="the CSV's table")] = "presence",
) -> Any:
    state = services(request)
    bucket_s = parse_bucket(bucket, "bucket")
    filters = _filters(camera or [], after, before)
    zones = load_zones(state.root)
    found: ZoneReport = state.reader.call(lambda store: _report(store, zones, filters, bucket_s, by))
    audit.record(state.root, caller, "zones.report",
                 f"cameras {', '.join(map(audit.quoted, camera or [])) or 'all with zones'}, after={after} "
                 f"before={before} bucket={bucket} by={found.by} format={format}", len(found.presence))
    if format == "csv":
        return Response(report_csv(found, table), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="zones-{table}.csv"'})
    return report_json(found)


def _report(store: StoreReader | None, zones: list[Zone], filters: SearchFilters, bucket_s: float,
            by: str) -> ZoneReport:
    if store is None:
        raise ApiError(409, "no_store", "the store holds nothing yet; ingest a video first")
    return zone_report(store, zones, filters, bucket_s, by, names=NAMES)


@router.get("/heatmap", response_class=Response, responses=PNG, summary="Where people stood on a camera (PNG)")
def heatmap(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    camera: CameraField,
    after: After = None,
    before: Before = None,
    weighted: Annotated[bool, Query(description="weigh each sighting by the seconds it stands for")] = False,
) -> Response:
    state = services(request)
    filters = _filters([camera], after, before)

    def read(store: StoreReader | None) -> tuple[Any, np.ndarray, np.ndarray]:
        if store is None:
            raise ApiError(404, "not_found", f"no camera {camera!r}: the store holds nothing yet")
        check_search_options(store, SearchFilters(after=filters.after, before=filters.before), names=NAMES)
        return latest_video(store, camera), *foot_points(store, camera, filters)

    video, points, seconds = state.reader.call(read)
    frame = _frame(state, video, camera)
    png = heatmap_over(frame, points, seconds if weighted else np.ones(len(points)), load_zones(state.root, camera))
    audit.record(state.root, caller, "zones.heatmap", f"camera {audit.quoted(camera)} after={after} before={before}",
                 len(points))
    return Response(png, media_type="image/png")


@router.get("/frame", response_class=Response, responses=JPEG, summary="A camera's frame to draw zones on (JPEG)")
def frame(request: Request, caller: Annotated[Caller, Depends(viewer)], camera: CameraField) -> Response:
    """The live watcher's latest snapshot of the camera, else the first frame of its latest video, else a grey
    canvas of its size; ``X-Frame-Source`` says which (snapshot, video, canvas)."""
    state = services(request)
    video = state.reader.call(lambda store: latest_video(store, camera))
    found = _frame(state, video, camera)
    out = io.BytesIO()
    Image.fromarray(found.image).save(out, format="JPEG", quality=88)
    audit.record(state.root, caller, "zones.frame", f"camera {audit.quoted(camera)} ({found.source})")
    return Response(out.getvalue(), media_type="image/jpeg", headers={"X-Frame-Source": found.source})


def _frame(state: Services, video: Any, camera: str) -> Any:
    try:
        return camera_frame(video, state.root, camera)
    except StoreError:
        raise ApiError(404, "not_found", f"no camera {camera!r} in the store, and no live frame of it") from None
