"""Where a figure goes and in which format: PNG by default, SVG on request; written atomically.

The format comes from ``--format`` or from the output's suffix; the two must agree, so that a file named
``fig.png`` never holds SVG. Every figure is saved through ``save_figure`` (temporary file + rename), so an
interrupted command never leaves half an image where an earlier, whole one was.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)

from reidkit.errors import ConfigError  # noqa: E402

FORMATS = ("png", "svg")
DPI = 100


def figure_path(out: Path, fmt: str | None = None) -> Path:
    """``out`` with the suffix of its format: ``--format`` wins when the path has none; a conflict is an error."""
    out = Path(out)
    suffix = out.suffix.lower().lstrip(".")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise ConfigError(f"{out}: the suffix says {suffix} but --format says {fmt}; make them agree")
        return out
    if suffix and fmt is None:
        raise ConfigError(f"{out}: unknown figure format {suffix!r}; name it .png or .svg, or pass --format")
    return out.with_name(out.name + f".{fmt or 'png'}")


def save_figure(fig: plt.Figure, path: Path, dpi: int = DPI) -> Path:
    """Save ``fig`` to ``path`` (format from its suffix, see ``figure_path``) atomically, close it, return path."""
    path = figure_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(temporary, dpi=dpi, format=path.suffix.lstrip(".").lower())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
        plt.close(fig)
    return path
