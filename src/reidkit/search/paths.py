"""Paths and the store folder: a path read from the store stays inside it, and no output goes into it.

A store's SQLite file names its crops by paths relative to the store folder. Those paths are data, not trust: a
damaged or hand-edited store could name ``/home/me/.ssh/id_rsa`` or ``../../secret``, and ``search --html`` inlines
every crop it shows, so a path is resolved (symlinks too) and refused unless it lands inside the store. The other
way round, a report written into the store folder could overwrite its database, a crop or an index file, so output
paths that resolve inside a store are refused before any work is done.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from reidkit.errors import ConfigError, StoreError


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
