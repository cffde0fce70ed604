"""The names of a store folder's files and folders, in one place: every module that makes or reads one asks here.

Layout of a store folder::

    reidkit.sqlite              cameras, videos, tracks, detections (+ every feature as a float32 BLOB), people, meta
    .lock                       held by the one writer (``reidkit ingest``, ``reindex``, ``store reindex-backend``)
    crops/v<video>/<frame>_<slot>.jpg
    vectors/                    the vector index backend's own files (FAISS files, an embedded milvus-lite database)

Other things may share the folder (the service's ``service.sqlite``, the user's files); ``STORE_ENTRIES`` is what
the store itself makes there, so that a failed first ingest removes only those (``paths.discard_on_failure``).
"""

from __future__ import annotations

from pathlib import Path

DB_NAME = "reidkit.sqlite"
LOCK_NAME = ".lock"
CROPS_FOLDER = "crops"
VECTORS_FOLDER = "vectors"

# What opening a new store creates in its folder: SQLite and its side files, the writer's lock, crops and indexes.
STORE_ENTRIES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME, CROPS_FOLDER,
                 VECTORS_FOLDER)


def crop_folder(root: Path, video_id: int) -> Path:
    """The folder holding one video's crop files."""
    return Path(root) / CROPS_FOLDER / f"v{video_id:06d}"


def crop_path(video_id: int, frame_index: int, slot: int) -> str:
    """A crop's path as SQLite records it: relative to the store folder, with forward slashes on every system."""
    return f"{CROPS_FOLDER}/v{video_id:06d}/{frame_index:07d}_{slot:02d}.jpg"


def vectors_folder(root: Path) -> Path:
    """The folder a store's vector index backend keeps its files in (``IndexLocation.folder``)."""
    return Path(root) / VECTORS_FOLDER
