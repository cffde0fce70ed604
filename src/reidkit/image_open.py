"""Opening an image file with its pixel count checked from the header, before anything is decoded.

A 20 KB PNG can declare 13000x13000 pixels and decode into gigabytes of memory. Every image reidkit reads (training
crops, search queries, stored crops, video frames through ``probe_video``) is checked against ``MAX_IMAGE_PIXELS``
so that such a file fails in one line naming it. Pillow's own guard only warns below twice its 89-megapixel
default, far past what any person crop or camera frame needs. This module is torch-free on purpose:
``reidkit search`` reads its query before it knows whether a model is needed at all.

Every image is also turned upright here (``upright_rgb``): a phone stores the sensor's pixels and records the turn
in the EXIF orientation tag, which browsers and photo viewers apply. Read without it, a portrait photo is searched
lying on its side (the detector finds nobody) and a box drawn on the upright picture in the web page lands on other
pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

from reidkit.errors import ImageError

# 40 megapixels: an 8K UHD frame (7680x4320, 33 MP) fits; a person crop is rarely above 0.1 MP.
MAX_IMAGE_PIXELS = 40_000_000
# What PIL raises for unreadable files: OSError (missing, unidentified, truncated), SyntaxError and ValueError from
# format parsers that hit garbage, and the decompression-bomb guard for absurd sizes.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def too_many_pixels(width: int, height: int) -> str | None:
    """Why ``width`` x ``height`` is refused, or None when it is within ``MAX_IMAGE_PIXELS``."""
    if width * height <= MAX_IMAGE_PIXELS:
        return None
    return (
        f"{width}x{height} pixels ({width * height / 1e6:.0f} megapixels), over reidkit's limit of "
        f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels"
    )


def open_header(path: Path) -> Image.Image:
    """``Image.open(path)``: the header read, no pixel decoded yet, and Pillow's large-image warning silenced
    (``too_many_pixels`` decides instead). PIL's errors pass through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def open_image(path: Path) -> Image.Image:
    """``open_header(path)``, refused with ``ImageError`` naming the file when it declares more than
    ``MAX_IMAGE_PIXELS``. Use it as a context manager; PIL's own errors pass through."""
    image = open_header(path)
    problem = too_many_pixels(*image.size)
    if problem is not None:
        image.close()
        raise ImageError(f"image {path} is {problem}; scale it down (or crop the person) first")
    return image


def upright_rgb(image: Image.Image) -> Image.Image:
    """``image`` decoded as RGB the way viewers show it: its EXIF orientation applied (see the module's note).
    The one conversion every reader uses, so that the search, the extractor, albums and the service see the same
    pixels and the same width and height for one file."""
    upright = ImageOps.exif_transpose(image)
    return upright if upright.mode == "RGB" else upright.convert("RGB")
