"""A camera's heat map: where people stood (their foot points), smoothed, coloured and laid over one of its frames,
with its zones drawn on top and named. A PNG.

The frame underneath is the best one there is: the live watcher's latest snapshot (``live_db.snapshot_path``, kept
fresh while it runs), else a frame of the camera's latest stored video file (its first committed frame), else a plain
grey canvas of the video's size, so that a camera whose recordings have moved still gets a map. Each foot point adds
one (or, ``weighted``, its sampling interval in seconds: the map then shows time spent rather than sightings) to a
grid at most ``_GRID_SIDE`` cells on its long side; the grid is smoothed with a Gaussian a fortieth of the frame
wide, scaled to the frame and coloured with matplotlib's ``inferno``, opaque where it is hot and clear where nobody
stood.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reidkit.errors import ReidkitError, StoreError
from reidkit.image_open import open_image, upright_rgb
from reidkit.live.zones import Zone, snapshot_of
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import VideoRecord

_GRID_SIDE = 320
_MAX_ALPHA = 0.75
_ZONE_COLOUR = (80, 220, 255)


@dataclass(frozen=True)
class CameraFrame:
    """A frame of a camera to draw on, and where it came from: ``snapshot``, ``video`` or ``canvas``."""

    image: np.ndarray  # RGB uint8, H x W x 3
    source: str


def latest_video(store: StoreReader | None, camera: str) -> VideoRecord | None:
    """The camera's most recent video in the store (None: none, or no store yet)."""
    videos = [] if store is None else [video for video in store.videos() if video.camera == camera]
    return videos[-1] if videos else None


def camera_frame(video: VideoRecord | None, store_root: Path, camera: str) -> CameraFrame:
    """The frame to draw ``camera``'s zones and heat map on (see the module docstring), ``video`` being its latest
    (``latest_video``); ``StoreError`` when the camera has neither a snapshot nor a video in the store."""
    snapshot = snapshot_of(store_root, camera)
    if snapshot is not None:
        try:
            with open_image(snapshot) as image:
                return CameraFrame(np.asarray(upright_rgb(image)), "snapshot")
        except (OSError, ReidkitError):
            pass  # being replaced by the watcher, or unreadable: fall back to the recordings
    if video is None:
        raise StoreError(f"camera {camera!r} has no video in the store and no live snapshot to draw on")
    if "://" not in video.path and video.last_committed_frame >= video.start_frame:
        from reidkit.video import read_frame

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a truncated file's warning: the frame decodes or it does not
                return CameraFrame(read_frame(Path(video.path), video.start_frame).image, "video")
        except ReidkitError:
            pass  # moved, gone or unreadable: a canvas of its size instead
    return CameraFrame(np.full((video.height, video.width, 3), 96, dtype=np.uint8), "canvas")


def foot_points(store: StoreReader, camera: str, filters: SearchFilters = SearchFilters()) -> tuple[np.ndarray,
                                                                                                    np.ndarray]:
    """``(points (N, 2), seconds (N,))``: every committed sighting's foot point on ``camera`` within the time
    filter, and the sampling interval (``every_n / fps``) it stands for."""
    sql = ("SELECT (d.x0 + d.x1) / 2, d.y1, CASE WHEN v.fps > 0 THEN v.every_n / v.fps ELSE 0 END FROM detections d "
           "JOIN videos v ON v.id = d.video_id JOIN cameras c ON c.id = v.camera_id WHERE c.name = ?")
    params: list[object] = [camera]
    if filters.after is not None:
        sql, params = sql + " AND v.start_epoch + d.time_s >= ?", [*params, filters.after_epoch]
    if filters.before is not None:
        sql, params = sql + " AND v.start_epoch + d.time_s <= ?", [*params, filters.before_epoch]
    table = np.array(store.db.execute(sql, params).fetchall(), dtype=np.float64).reshape(-1, 3)
    return table[:, :2], table[:, 2]


def heat_layer(points: np.ndarray, weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The smoothed density of ``points`` over a ``size`` (width, height) frame, in [0, 1] (H x W, float32)."""
    from scipy.ndimage import gaussian_filter

    width, height = size
    scale = min(1.0, _GRID_SIDE / max(width, height))
    grid_w, grid_h = max(1, round(width * scale)), max(1, round(height * scale))
    grid = np.zeros((grid_h, grid_w), dtype=np.float64)
    if len(points):
        cols = np.clip((points[:, 0] * scale).astype(np.int64), 0, grid_w - 1)
        rows = np.clip((points[:, 1] * scale).astype(np.int64), 0, grid_h - 1)
        np.add.at(grid, (rows, cols), weights)
    grid = gaussian_filter(grid, sigma=max(grid_w, grid_h) / 40, mode="constant")
    peak = grid.max()
    if peak > 0:
        grid /= peak
    layer = Image.fromarray(grid.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(layer), 0.0, 1.0)


def render_heatmap(frame: np.ndarray, heat: np.ndarray, zones: list[Zone]) -> Image.Image:
    """``heat`` coloured and blended over ``frame``, with ``zones`` outlined and named."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](heat)[..., :3] * 255
    alpha = (_MAX_ALPHA * np.sqrt(heat))[..., None]  # the square root lifts the thin tails into view
    blended = frame.astype(np.float32) * (1 - alpha) + colours * alpha
    picture = Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    line = max(2, picture.width // 300)
    font = ImageFont.load_default(size=max(12, picture.width // 45))
    for zone in zones:
        outline = [(float(x), float(y)) for x, y in zone.polygon]
        draw.line([*outline, outline[0]], fill=_ZONE_COLOUR, width=line, joint="curve")
        left = min(outline, key=lambda p: (p[1], p[0]))  # the name at the outline's top point
        draw.text((left[0] + line, left[1] + line), zone.name, fill=_ZONE_COLOUR, font=font, stroke_width=2,
                  stroke_fill=(0, 0, 0))
    return picture


def heatmap_png(store: StoreReader, store_root: Path, camera: str, zones: list[Zone],
                filters: SearchFilters = SearchFilters(), weighted: bool = False) -> tuple[bytes, CameraFrame, int]:
    """The PNG of ``camera``'s heat map, the frame it was drawn on, and how many sightings it holds."""
    frame = camera_frame(latest_video(store, camera), store_root, camera)
    points, seconds = foot_points(store, camera, filters)
    return heatmap_over(frame, points, seconds if weighted else np.ones(len(points)), zones), frame, len(points)


def heatmap_over(frame: CameraFrame, points: np.ndarray, weights: np.ndarray, zones: list[Zone]) -> bytes:
    """The heat map of ``points`` (weighted) over ``frame`` with ``zones`` drawn, as PNG bytes."""
    height, width = frame.image.shape[:2]
    picture = render_heatmap(frame.image, heat_layer(points, weights, (width, height)), zones)
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()
