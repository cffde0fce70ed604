"""One entry point from a dataset name and folder to a ``ReidDataset``, with options checked against the reader."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reidkit.data.csv_table import read_csv
from reidkit.data.cuhk03 import read_cuhk03
from reidkit.data.dukemtmc import read_dukemtmc
from reidkit.data.folder import read_folder
from reidkit.data.market1501 import read_market1501
from reidkit.data.msmt17 import read_msmt17
from reidkit.data.types import ReidDataset
from reidkit.errors import ConfigError

READERS: dict[str, Callable[..., ReidDataset]] = {
    "market1501": read_market1501,
    "cuhk03": read_cuhk03,
    "dukemtmc": read_dukemtmc,
    "msmt17": read_msmt17,
    "folder": read_folder,
    "csv": read_csv,
}


def load_dataset(name: str, root: Path, **options: Any) -> ReidDataset:
    """Read dataset ``name`` from ``root``; ``options`` are the reader's keyword options (e.g. ``variant``).

    Options are checked here so that a misspelt option in a config fails with the list of valid ones instead of a
    bare ``TypeError``. Record paths come back absolute, so they stay valid if the caller changes directory.
    """
    reader = READERS.get(name)
    if reader is None:
        raise ConfigError(f"dataset {name!r} is unknown; choose one of {', '.join(sorted(READERS))}")
    accepted = [p.name for p in inspect.signature(reader).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) or "none"
        raise ConfigError(f"dataset {name!r} has no option {', '.join(unknown)}; valid options: {valid}")
    return reader(Path(root).expanduser().absolute(), **options)
