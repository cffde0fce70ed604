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
from reidkit.data.shared_benchmark import read_shared_cuhk03
from reidkit.data.types import ReidDataset
from reidkit.errors import ConfigError
from reidkit.registry import Registry

DATASETS: Registry[Callable[..., ReidDataset]] = Registry("dataset", ConfigError)
DATASETS.add("market1501", read_market1501, "Market-1501 layout (bounding_box_train / query / bounding_box_test)")
DATASETS.add("cuhk03", read_cuhk03, "CUHK03 new protocol, labeled or detected (variant=...)")
DATASETS.add(
    "cuhk03_shared", read_shared_cuhk03, "the shared CUHK03 benchmark, cut by camera pair (train_pairs, test_pairs)"
)
DATASETS.add("dukemtmc", read_dukemtmc, "DukeMTMC-reID")
DATASETS.add("msmt17", read_msmt17, "MSMT17 V1 or V2, from its list files")
DATASETS.add("folder", read_folder, "your own crops: <person>/[<camera>/]<image>, optional train/query/gallery")
DATASETS.add("csv", read_csv, "your own crops listed in a CSV: path, person, camera[, split]")


def load_dataset(name: str, root: Path, **options: Any) -> ReidDataset:
    """Read dataset ``name`` from ``root``; ``options`` are the reader's keyword options (e.g. ``variant``).

    Options are checked here so that a misspelt option in a config fails with the list of valid ones instead of a
    bare ``TypeError``. Record paths come back absolute, so they stay valid if the caller changes directory.
    """
    reader = DATASETS.get(name)
    accepted = [p.name for p in inspect.signature(reader).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) or "none"
        raise ConfigError(f"dataset {name!r} has no option {', '.join(unknown)}; valid options: {valid}")
    return reader(Path(root).expanduser().absolute(), **options)
