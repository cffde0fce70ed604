"""Check image files before training and read them with errors that name the file.

A corrupt crop found by a DataLoader worker surfaces as a deep, multi-process traceback halfway through an epoch;
checking up front (``verify_images``) and reading through ``read_image`` turns it into one line naming the file.
PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is deliberately left False: with it on, truncated JPEGs decode into
silently grey-padded crops instead of failing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from reidkit.data.types import ImageRecord
from reidkit.errors import ConfigError, ImageError
from reidkit.image_open import DECODE_ERRORS, open_header, open_image, too_many_pixels, upright_rgb

PROGRESS_MIN_IMAGES = 1000


def read_image(path: Path) -> Image.Image:
    """The image as RGB, fully decoded; ImageError naming the file if it cannot be, or if it declares more pixels
    than ``reidkit.image_open.MAX_IMAGE_PIXELS`` (checked before decoding)."""
    try:
        with open_image(path) as image:
            return upright_rgb(image)
    except DECODE_ERRORS as exc:
        raise ImageError(f"{path}: cannot read image ({_describe(path, exc)}); replace or remove the file") from exc


def verify_images(
    records: Sequence[ImageRecord],
    mode: Literal["header", "full"] = "header",
    on_error: Literal["raise", "skip"] = "raise",
) -> tuple[list[ImageRecord], list[tuple[Path, str]]]:
    """Split ``records`` into readable ones and ``(path, reason)`` for the rest, keeping the input order.

    ``header`` opens each file and reads its size (catches missing, empty and non-image files quickly); ``full``
    decodes every pixel, which is the only way to catch truncated or corrupt data. With ``on_error="raise"`` the
    first bad file (in input order) raises ImageError.
    """
    if mode not in ("header", "full"):
        raise ConfigError(f"image check mode must be 'header' or 'full', not {mode!r}")
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"image check on_error must be 'raise' or 'skip', not {on_error!r}")
    check = partial(_problem, decode=mode == "full")
    good: list[ImageRecord] = []
    skipped: list[tuple[Path, str]] = []
    # Decoding releases the GIL and header reads wait on the disk, so threads give real parallelism here.
    pool = ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2))
    try:
        problems = pool.map(check, (r.path for r in records))
        bar = tqdm(
            problems,
            total=len(records),
            desc=f"checking images ({mode})",
            unit="img",
            disable=len(records) < PROGRESS_MIN_IMAGES,
        )
        for record, problem in zip(records, bar, strict=True):
            if problem is None:
                good.append(record)
            elif on_error == "raise":
                raise ImageError(f"{record.path}: {problem}; replace or remove the file, or skip bad images")
            else:
                skipped.append((record.path, problem))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return good, skipped


def _problem(path: Path, decode: bool) -> str | None:
    """Why ``path`` is not a usable image, or None if it is (an image over the pixel limit is not decoded)."""
    try:
        with open_header(path) as image:
            oversized = too_many_pixels(*image.size)
            if decode and oversized is None:
                image.load()
            width, height = image.size
    except DECODE_ERRORS as exc:
        return _describe(path, exc)
    if oversized is not None:
        return f"image is {oversized}"
    return None if width > 0 and height > 0 else f"image has zero size {width}x{height}"


def _describe(path: Path, exc: BaseException) -> str:
    """A short reason that tells the user what is wrong with the file rather than which decoder failed."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    if isinstance(exc, PermissionError):
        return "no permission to read it"
    try:
        if os.path.getsize(path) == 0:
            return "file is empty"
    except OSError:
        pass
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can read"
    if "truncated" in str(exc):
        return f"image data is truncated ({exc})"
    return f"corrupt image ({type(exc).__name__}: {exc})"
