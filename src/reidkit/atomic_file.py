"""One way to replace a file so that a reader, or a process killed mid-write, never sees half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, and rename it over ``path``: a reader sees the old
    file or the whole new one, never half of it."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; what is written here is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
