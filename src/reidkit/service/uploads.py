"""Uploaded videos in ``<db>/uploads/``: how one arrives, how a second copy of it is told, and when it goes.

A file arrives through a hidden partial file renamed into place, so the folder never holds half a video under a
real name, and under a name the server makes up (the client's name is only ever quoted in the audit log) that
carries the first 16 hex digits of its content's SHA-256, computed while copying: a second upload of the same
video while the first one's job is unfinished is told by its name alone (``digest_of``), without reading either
file again.

Footage must not outlive its purpose: a file is kept while a store video or an unfinished job (queued, running,
interrupted or cancelled, which can still resume) names it, and while it is arriving. ``sweep`` deletes the rest;
the service runs it after every delete and purge, and an ingest job that fails before storing anything deletes its
own file (``ingest_worker``).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from reidkit.search.retention import UPLOADS
from reidkit.service.limits import ApiError, video_kind

_COPY_CHUNK = 1024 * 1024
_NAME = re.compile(r"\d{8}T\d{6}Z-([0-9a-f]{16})-[0-9a-f]{8}\.\w+")
# Names of files copied in or renamed into place but not yet given to a job, in this process: never swept.
_ARRIVING: set[str] = set()
_ARRIVING_LOCK = threading.Lock()


def uploads_dir(db: Path) -> Path:
    """Where the API saves uploaded videos: inside the store folder, so that ``search.retention`` deletes a purged
    video's file along with its rows (the store keeps decoding frames from it until then)."""
    return Path(db) / UPLOADS


def digest_of(path: str | Path) -> str | None:
    """The content digest in an uploaded file's name; None for a file the service did not name."""
    found = _NAME.fullmatch(Path(path).name)
    return None if found is None else found[1]


@contextmanager
def saved_upload(stream: BinaryIO, folder: Path, limit: int) -> Iterator[Path]:
    """Copy an uploaded video into ``folder`` and yield its path; refused by content (415) or size (413). The file
    is kept from ``sweep`` while the block runs (it submits the job that will name it) and deleted when the block
    raises (a refused job leaves nothing behind)."""
    head = stream.read(_COPY_CHUNK)
    if not head:
        raise ApiError(400, "empty_file", "file is empty")
    kind = video_kind(head[:16])
    if kind is None:
        raise ApiError(415, "unsupported_type", "file is not an MP4/MOV, MKV or AVI video (judged by its content)")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{secrets.token_hex(8)}.part"
    path: Path | None = None
    try:
        digest = _copy(head, stream, partial, limit)
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest[:16]}-{secrets.token_hex(4)}.{kind}"
        with _ARRIVING_LOCK:
            _ARRIVING.add(path.name)
        os.replace(partial, path)
        yield path
    except BaseException:
        partial.unlink(missing_ok=True)
        if path is not None:
            path.unlink(missing_ok=True)
        raise
    finally:
        if path is not None:
            with _ARRIVING_LOCK:
                _ARRIVING.discard(path.name)


def _copy(head: bytes, stream: BinaryIO, partial: Path, limit: int) -> str:
    """Write ``head`` and the rest of ``stream`` to ``partial`` (fsynced), 413 past ``limit``; the SHA-256 hex."""
    digest = hashlib.sha256()
    size = 0
    with open(partial, "xb") as out:
        while head:
            size += len(head)
            if size > limit:
                raise ApiError(413, "too_large", f"file is over the limit of {limit / 1e6:.0f} MB")
            out.write(head)
            digest.update(head)
            head = stream.read(_COPY_CHUNK)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def sweep(db: Path, needed: Iterable[str]) -> list[str]:
    """Delete every file in ``<db>/uploads/`` that no path in ``needed`` names (the store's videos and the
    unfinished jobs' files) and that is not arriving; hidden files are copies under way. The names deleted."""
    folder = uploads_dir(db)
    if not folder.is_dir():
        return []
    kept = {Path(path).resolve() for path in needed if "://" not in path}
    with _ARRIVING_LOCK:
        arriving = set(_ARRIVING)
    removed = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in arriving or not path.is_file() or path.resolve() in kept:
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed
