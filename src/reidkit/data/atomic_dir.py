"""Build a folder out of sight, then publish it with one ``rename`` so readers never see half of it.

Unpacking a tar or extracting thousands of images takes long enough that an interrupted run, or two test workers
starting at once, would otherwise leave a half-filled folder that later loads trust. A rename within one file
system is atomic: the folder either does not exist or is complete.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def publish_atomically(target: Path, build: Callable[[Path], Path]) -> Path:
    """Create ``target`` with ``build`` unless it already exists.

    ``build`` receives an empty scratch folder next to ``target`` (same file system, so the rename is atomic) and
    returns the folder inside it that becomes ``target``. If another process publishes first, its copy wins and
    ours is thrown away: both are complete, so either will do.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        built = build(scratch)
        try:
            os.rename(built, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not target.exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
