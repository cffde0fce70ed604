"""Paths and the store folder: a path read from the store stays inside it, and no output goes into it.

A store's SQLite file names its crops by paths relative to the store folder. Those paths are data, not trust: a
damaged or hand-edited store could name ``/home/me/.ssh/id_rsa`` or ``../../secret``, and ``search --html`` inlines
every crop it shows, so a path is resolved (symlinks too) and refused unless it lands inside the store. The other
way round, a report written into the store folder could overwrite its database, a crop or an index file, so output
paths that resolve inside a store are refused before any work is done.

A store folder is shared: the service keeps ``service.sqlite`` (tokens, audit log) beside the store's files, and a
user may point ``--db`` at a folder that holds other things. So when the first ingest into a folder fails before
its first video row (``discard_on_failure``), only the entries the store itself made (``layout.STORE_ENTRIES``) go, and
the folder only when the run made it and nothing else is left in it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path, PurePosixPath

from reidkit.errors import ConfigError, StoreError
from reidkit.store.layout import DB_NAME, STORE_ENTRIES


def stored_file(root: Path, relative: str, what: str = "crop file") -> Path:
    """The file a stored ``relative`` path names inside store ``root``; ``StoreError`` naming it when it is
    absolute, climbs out with ``..`` or resolves (through symlinks) outside the store."""
    parts = PurePosixPath(relative)
    escapes = parts.is_absolute() or Path(relative).is_absolute() or ".." in parts.parts or "\\" in relative
    path = Path(root) / relative
    if not escapes:
        base = Path(root).resolve()
        escapes = not path.resolve().is_relative_to(base)
    if escapes or not relative:
        raise StoreError(
            f"store {root} lists {what} {relative!r}, which lies outside the store folder; the store is damaged or "
            "was edited by hand: re-ingest its videos into a new --db folder"
        )
    return path


def refuse_inside_store(root: Path, output: Path, option: str) -> None:
    """``ConfigError`` when ``output`` (``option`` names the flag) resolves to the store folder or anything in it."""
    base, target = Path(root).resolve(), Path(output).resolve()
    if target.is_relative_to(base):
        raise ConfigError(
            f"{option} {output} lies inside the store folder {root}; write it elsewhere (a file there could "
            "overwrite the store's database, crops or indexes)"
        )


@contextmanager
def discard_on_failure(root: Path) -> Iterator[None]:
    """Around the first ingest into ``root``: when the block fails and the store holds no video yet, remove the
    store entries this run made, and the folder if the run made it and it is left empty; nothing else in it (a
    ``service.sqlite`` with tokens and the audit log, the user's files) is touched. A folder already holding a
    store is left as it is."""
    root = Path(root)
    if (root / DB_NAME).exists():
        yield
        return
    made_folder = not root.exists()
    existed = {name for name in STORE_ENTRIES if (root / name).exists()}
    try:
        yield
    except BaseException:
        if root.is_dir() and not _holds_a_video(root / DB_NAME):
            for name in STORE_ENTRIES:
                if name not in existed:
                    _remove(root / name)
            if made_folder and not any(root.iterdir()):
                root.rmdir()
        raise


def _holds_a_video(db_path: Path) -> bool:
    """True when ``db_path`` records a video, or cannot be read (then it is kept, to be safe)."""
    if not db_path.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as connection:
            return bool(connection.execute("SELECT COUNT(*) FROM videos").fetchone()[0])
    except sqlite3.OperationalError as exc:
        return "no such table" not in str(exc)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
