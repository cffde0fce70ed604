"""Turning what the user has (a crop, a whole frame, a frame plus a box) into the person crop to search with.

A person crop is taller than wide; a camera frame is wider than tall. So an image at least as wide as it is tall
is treated as a frame: with ``--box`` the box is cut out of it, without one the detector must find exactly one
person in it (none or several is an error that says what to do). A portrait image is used as the crop itself.
A crop under ``MIN_QUERY_SIDE`` pixels on a side holds no person to speak of, and is refused rather than answered
with confident-looking scores. Messages name the box as the caller knows it: ``--box`` on the command line, the
``box`` field over HTTP (``option``, ``box_option``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidkit.errors import ConfigError, ImageError
from reidkit.image_open import DECODE_ERRORS, open_image, upright_rgb
from reidkit.video import Detector, crop_person
from reidkit.video.crops import MIN_QUERY_SIDE, QUERY_MIN_SCORE


@dataclass(frozen=True)
class QueryCrop:
    """``kind`` is ``crop``, ``frame+box`` or ``frame+detector``; ``box`` is in the source image's pixels."""

    image: np.ndarray
    kind: str
    box: tuple[float, float, float, float] | None


def parse_box(text: str, option: str = "--box") -> tuple[float, float, float, float]:
    """``x0,y0,x1,y1`` in pixels (finite numbers), x0 < x1 and y0 < y1."""
    parts = text.replace(" ", "").split(",")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} must be four numbers x0,y0,x1,y1 (pixels), e.g. {option} 120,40,180,200"
        ) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ConfigError(f"{option} {text!r} must be four finite numbers (pixels), e.g. {option} 120,40,180,200")
    if not (x0 < x1 and y0 < y1):
        raise ConfigError(f"{option} {text!r} needs x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def load_query_image(path: Path) -> np.ndarray:
    """The image at ``path`` as HxWx3 uint8 RGB; ``ImageError`` naming it when it is missing, a folder, not an
    image, or over the pixel limit (``reidkit.image_open``, checked before decoding).

    Read through ``reidkit.image_open`` rather than ``reidkit.data.read_image``, which would import torch, seconds
    before a search that may not need a model at all (``--track``) or should fail fast on a bad file.
    """
    if Path(path).is_dir():
        raise ImageError(f"query image {path} is a folder; pass one person crop or frame (JPEG/PNG)")
    if not Path(path).is_file():
        raise ImageError(f"query image {path} does not exist; pass a person crop or a frame (JPEG/PNG)")
    try:
        with open_image(path) as image:
            return np.asarray(upright_rgb(image))
    except DECODE_ERRORS as exc:
        raise ImageError(f"query image {path} cannot be read ({exc}); pass a JPEG or PNG person crop or frame") from exc


def looks_like_frame(image: np.ndarray) -> bool:
    height, width = image.shape[:2]
    return width >= height


def query_crop(
    image: np.ndarray,
    source: str,
    box: tuple[float, float, float, float] | None,
    detector: Callable[[], Detector],
    box_option: str = "--box",
) -> QueryCrop:
    """The person crop to search with; ``detector`` is only built when a frame without a box needs it."""
    height, width = image.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = box
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise ConfigError(f"{box_option} {box} lies outside {source} ({width}x{height} pixels)")
        crop = crop_person(image, box)
        _check_size(crop, f"{box_option} {box} in {source}")
        return QueryCrop(crop, "frame+box", box)
    _check_size(image, f"query image {source}")
    if not looks_like_frame(image):
        return QueryCrop(image, "crop", None)
    found = detector().detect(image)
    found = found[found[:, 4] >= QUERY_MIN_SCORE]
    if len(found) == 0:
        raise ImageError(
            f"no person found in {source} ({width}x{height}, treated as a whole frame since it is not taller than "
            f"wide); pass a person crop, or {box_option} x0,y0,x1,y1 around the person"
        )
    if len(found) > 1:
        boxes = "; ".join(",".join(f"{v:.0f}" for v in row[:4]) for row in found[:5])
        raise ImageError(
            f"{len(found)} people found in {source}; pick one with {box_option} x0,y0,x1,y1 (detected: {boxes})"
        )
    chosen = tuple(float(v) for v in found[0][:4])
    crop = crop_person(image, chosen)  # type: ignore[arg-type]
    _check_size(crop, f"the person found in {source}")
    return QueryCrop(crop, "frame+detector", chosen)  # type: ignore[arg-type]


def _check_size(image: np.ndarray, what: str) -> None:
    height, width = image.shape[:2]
    if min(height, width) < MIN_QUERY_SIDE:
        raise ImageError(
            f"{what} is {width}x{height} pixels, too small to show a person (at least {MIN_QUERY_SIDE} on a side); "
            "pass a larger crop"
        )
