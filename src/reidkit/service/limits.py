"""What a request may ask for, checked before any work: sizes, pixel counts, what a file really is, how often.

Each check raises ``ApiError`` with its own 4xx status and a one-line message naming the field, so a client can
tell a too-large upload (413) from a file of the wrong kind (415), a bad field (400) or too many requests (429).
File types are told by their first bytes, never by the name or the declared ``Content-Type``, which the client
chooses freely.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections import deque
from typing import BinaryIO

import numpy as np
from fastapi.responses import JSONResponse
from PIL import Image

from reidkit.image_open import DECODE_ERRORS, upright_rgb

# kind -> every (offset, bytes) its file starts with
_IMAGE_MAGIC = {
    "jpeg": ((0, b"\xff\xd8\xff"),),
    "png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "webp": ((0, b"RIFF"), (8, b"WEBP")),
}
_VIDEO_MAGIC = {
    "mp4": ((4, b"ftyp"),),
    "mov": ((4, b"moov"),),
    "mkv": ((0, b"\x1a\x45\xdf\xa3"),),
    "avi": ((0, b"RIFF"), (8, b"AVI ")),
}


class ApiError(Exception):
    """A refused request: HTTP ``status``, a stable machine-readable ``code`` and a one-line ``message``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every refusal's body: ``{"error": {"code": ..., "message": ...}}``."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def sniff(head: bytes, table: dict[str, tuple[tuple[int, bytes], ...]]) -> str | None:
    """The first kind in ``table`` whose magic bytes ``head`` carries, else None."""
    for kind, marks in table.items():
        if all(head[offset : offset + len(magic)] == magic for offset, magic in marks):
            return kind
    return None


def image_kind(head: bytes) -> str | None:
    """``jpeg``, ``png`` or ``webp`` from the first bytes, else None."""
    return sniff(head, _IMAGE_MAGIC)


def video_kind(head: bytes) -> str | None:
    """``mp4``, ``mov``, ``mkv`` or ``avi`` from the first 12 bytes, else None."""
    return sniff(head, _VIDEO_MAGIC)


def read_upload(stream: BinaryIO, limit: int, field: str) -> bytes:
    """All of an uploaded file, refused with 413 past ``limit`` bytes (read one byte past it, never all of it)."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"{field} is over the limit of {limit / 1e6:.0f} MB")
    if not data:
        raise ApiError(400, "empty_file", f"{field} is empty")
    return bytes(data)


def decode_image(data: bytes, max_pixels: int, field: str = "image") -> np.ndarray:
    """A JPEG, PNG or WebP upload as HxWx3 uint8 RGB; its kind told by content (415), its declared pixel count
    checked from the header before anything is decoded (413), a damaged file refused (400)."""
    if image_kind(data[:16]) is None:
        raise ApiError(415, "unsupported_type", f"{field} is not a JPEG, PNG or WebP image (judged by its content)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(
                    413, "too_many_pixels",
                    f"{field} is {width}x{height} pixels, over the limit of {max_pixels / 1e6:.0f} megapixels; "
                    "scale it down or crop the person",
                )
            return np.asarray(upright_rgb(image))
    except Image.DecompressionBombError:
        raise ApiError(413, "too_many_pixels", f"{field} declares too many pixels to decode") from None
    except Image.UnidentifiedImageError:  # PIL's message names the in-memory stream object: of no use to a client
        raise ApiError(400, "bad_image", f"{field} cannot be decoded (not a complete JPEG, PNG or WebP)") from None
    except DECODE_ERRORS as exc:
        raise ApiError(400, "bad_image", f"{field} cannot be decoded ({exc})") from None


class RateLimiter:
    """At most ``per_minute`` events per key in any 60 s; over that, 429 with ``Retry-After``. The service keeps two:
    requests per token id, and failed authentications per client address (``what`` words the message)."""

    def __init__(self, per_minute: int, window_s: float = 60.0, what: str = "requests in a minute with this token"
                 ) -> None:
        self.per_minute, self.window_s, self.what = per_minute, window_s, what
        self._seen: dict[object, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: object) -> None:
        """Count one event for ``key``, refused (429) when the window is already full."""
        with self._lock:
            self._refuse_if_full(key)
            self._seen.setdefault(key, deque()).append(time.monotonic())

    def refuse_if_full(self, key: object) -> None:
        """429 when ``key`` has had ``per_minute`` events in the window; counts nothing (failed authentications are
        counted with ``add`` once they have failed, so concurrent tries may overshoot by a few)."""
        with self._lock:
            self._refuse_if_full(key)

    def add(self, key: object) -> bool:
        """Count one event for ``key``; True when that filled its window (the next one is refused)."""
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            seen.append(time.monotonic())
            return len(seen) >= self.per_minute

    def _refuse_if_full(self, key: object) -> None:
        now = time.monotonic()
        seen = self._seen.setdefault(key, deque())
        while seen and now - seen[0] >= self.window_s:
            seen.popleft()
        if len(seen) >= self.per_minute:
            wait = max(1, int(self.window_s - (now - seen[0])) + 1)
            raise ApiError(429, "rate_limited", f"more than {self.per_minute} {self.what}; retry in {wait} s",
                           headers={"Retry-After": str(wait)})
        if not seen:
            del self._seen[key]  # keys come and go (addresses): keep only those with events in the window
