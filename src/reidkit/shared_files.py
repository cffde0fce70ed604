"""Finding a file of the project's ``shared/`` folder (weights, detector models): an environment variable first,
else ``shared/`` beside the checkout (found from the package, then from the working directory).

One rule for every such file, so that an installed reidkit, a checkout and a test run agree on where they look.
"""

from __future__ import annotations

import os
from pathlib import Path

from reidkit.errors import ModelError

# src/reidkit/shared_files.py -> the checkout root, whose sibling is the shared/ folder.
_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_shared_file(env_var: str, relative: Path, what: str) -> Path | None:
    """``$env_var`` if set (it must name a file), else ``<shared>/relative`` if it exists, else None."""
    configured = os.environ.get(env_var)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ModelError(f"{env_var}={configured} is not a file; point it at {what} or unset it")
        return path
    for shared in (_REPO_ROOT.parent / "shared", Path.cwd().parent / "shared"):
        candidate = shared / relative
        if candidate.is_file():
            return candidate
    return None
