"""The training recipes shipped with reidkit: the papers' settings per dataset and the shared-benchmark recipes.

They are package data, so an installed reidkit finds them from any folder: ``--config mgn_market1501`` names one,
and ``--config path/to/mine.yaml`` still reads a file of your own. A path that exists always wins over a name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reidkit.errors import ConfigError

SUFFIX = ".yaml"


def recipe_names() -> list[str]:
    """Every shipped recipe's name (its file name without ``.yaml``), sorted."""
    return sorted(entry.name[: -len(SUFFIX)] for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(SUFFIX))


def recipe_summary(name: str) -> str:
    """The first line of a shipped recipe's header comment: what it trains, after which paper."""
    first = (resources.files(__name__) / f"{name}{SUFFIX}").read_text(encoding="utf-8").splitlines()[:1]
    return first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""


def shipped_recipe(name: str) -> Path | None:
    """The file of the shipped recipe ``name`` (with or without ``.yaml``), or None if there is none."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    shipped = resources.files(__name__) / f"{stem}{SUFFIX}"
    # setuptools installs packages unzipped, so this is a real file
    return Path(str(shipped)) if "/" not in stem and shipped.is_file() else None


def resolve_recipe(name_or_path: str | Path) -> Path:
    """The file to read for ``--config``: an existing path as given, else the shipped recipe of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.parent == Path(".") or path.parent.name in ("configs", "recipes"):
        shipped = shipped_recipe(path.name)
        if shipped is not None:
            return shipped
    raise ConfigError(
        f"{name_or_path}: cannot read config (no such file, and no shipped recipe of that name); "
        f"shipped recipes: {', '.join(recipe_names())}"
    )
