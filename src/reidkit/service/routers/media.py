"""What a hit links to: its crop, its whole frame with the box drawn, and its track with every crop.

Frames are not stored; they are decoded from the ingested video at the hit's frame (``reidkit.video.read_frame``,
which seeks to the keyframe before it) and checked against the digest the ingest recorded for that frame, so a
video file replaced since is refused rather than shown with a box around someone else. Viewing a frame or a track
is written to the audit log; crops are not (a search's grid shows dozens, and the search itself is logged).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from PIL import Image, ImageDraw

from reidkit.errors import ReidkitError, StoreError
from reidkit.service import audit
from reidkit.service.access import Caller
from reidkit.service.limits import ApiError
from reidkit.service.routers.search import links
from reidkit.service.schemas import TrackResponse
from reidkit.service.services import API, ERRORS, ItemId, services, viewer
from reidkit.store.paths import stored_file
from reidkit.store.reader import StoreReader
from reidkit.store.rows import DetectionRow, VideoRecord

router = APIRouter(prefix=API, tags=["media"], responses=ERRORS)
JPEG = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG image"}}


@router.get("/crops/{detection_id}", response_class=Response, responses=JPEG, summary="A stored person crop")
def crop(request: Request, caller: Annotated[Caller, Depends(viewer)], detection_id: ItemId) -> Response:
    state = services(request)
    row = state.reader.call(lambda store: _detection(store, detection_id))
    try:
        data = stored_file(state.root, row.crop_path).read_bytes()
    except (OSError, StoreError):
        raise ApiError(404, "not_found", f"the crop file of detection {detection_id} is missing from the store")
    return Response(data, media_type="image/jpeg")


@router.get("/frames/{detection_id}", response_class=Response, responses=JPEG, summary="A hit's frame, box drawn")
def frame(
    request: Request,
    caller: Annotated[Caller, Depends(viewer)],
    detection_id: ItemId,
    draw_box: Annotated[bool, Query(description="false: the frame as recorded, to draw a new query box on")] = True,
) -> Response:
    state = services(request)

    def find(store: StoreReader | None) -> tuple[DetectionRow, VideoRecord, str | None]:
        row = _detection(store, detection_id)
        assert store is not None
        digest = store.db.execute(
            "SELECT digest FROM frame_digests WHERE video_id = ? AND frame_index = ?", (row.video_id, row.frame_index)
        ).fetchone()
        return row, store.video(row.video_id), None if digest is None else str(digest[0])

    row, video, digest = state.reader.call(find)
    image = _decode(video, row.frame_index, digest)
    drawn = Image.fromarray(image)
    if draw_box:
        width = max(2, drawn.width // 250)
        ImageDraw.Draw(drawn).rectangle(row.box, outline=(255, 40, 40), width=width)
    out = io.BytesIO()
    drawn.save(out, format="JPEG", quality=88)
    audit.record(state.root, caller, "frame", f"detection {detection_id} (camera {row.camera!r}, video "
                 f"{row.video_id}, frame {row.frame_index})")
    return Response(out.getvalue(), media_type="image/jpeg")


@router.get("/tracks/{track_id}", response_model=TrackResponse, summary="A track and all its crops")
def track(request: Request, caller: Annotated[Caller, Depends(viewer)], track_id: ItemId) -> dict[str, Any]:
    state = services(request)

    def read(store: StoreReader | None) -> dict[str, Any]:
        found = {} if store is None else store.tracks([track_id])
        if track_id not in found:
            raise ApiError(404, "not_found", f"no track {track_id}")
        assert store is not None
        row = found[track_id]
        return {
            "track": {
                "id": row.id, "camera": row.camera, "video_id": row.video_id,
                "first_seen": _iso(row.first_seen), "last_seen": _iso(row.last_seen),
                "first_time_s": round(row.first_time_s, 3), "last_time_s": round(row.last_time_s, 3),
                "num_crops": row.num_crops,
            },
            "detections": [
                {"id": d.id, "frame_index": d.frame_index, "time": _iso(d.wall_time), "time_s": round(d.time_s, 3),
                 "box": [round(v, 1) for v in d.box], "score": round(d.score, 4), **links(d.id)}
                for d in store.track_detections(track_id)
            ],
        }

    payload = state.reader.call(read)
    audit.record(state.root, caller, "track", f"track {track_id} (camera {payload['track']['camera']!r})",
                 len(payload["detections"]))
    return payload


def _detection(store: StoreReader | None, detection_id: int) -> DetectionRow:
    found = {} if store is None else store.detections([detection_id])
    if detection_id not in found:
        raise ApiError(404, "not_found", f"no detection {detection_id}")
    return found[detection_id]


def _decode(video: VideoRecord, frame_index: int, digest: str | None) -> Any:
    """Frame ``frame_index`` of the stored video as RGB, refused (404) when the file is a stream, gone, unreadable
    or no longer the recording that was ingested."""
    from reidkit.video import frame_digest, read_frame

    unavailable = f"the frame cannot be shown: the video file of camera {video.camera!r} (video {video.id})"
    if "://" in video.path:
        raise ApiError(404, "frame_unavailable", f"{unavailable} is a stream; only files can be revisited")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a truncated file's warning: the frame either decodes or it does not
            image = read_frame(FilePath(video.path), frame_index).image
            if digest is not None and frame_digest(image) != digest:  # seeking misplaced it, or the file changed
                image = read_frame(FilePath(video.path), frame_index, seek=False).image
    except ReidkitError:
        raise ApiError(404, "frame_unavailable", f"{unavailable} is missing or unreadable") from None
    if digest is not None and frame_digest(image) != digest:
        raise ApiError(404, "frame_unavailable", f"{unavailable} has changed since it was ingested")
    return image


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()
