"""DukeMTMC-reID: Market-1501's folder layout with Duke's own file names (``0005_c2_f0046985.jpg``).

Its authors withdrew the dataset in 2019; reidkit only reads copies that users already have and never downloads it.
"""

from __future__ import annotations

import re
from pathlib import Path

from reidkit.data.market1501 import NamingScheme, read_market_layout
from reidkit.data.types import ReidDataset

DUKE_NAMES = NamingScheme(re.compile(r"(?P<pid>\d{4})_c(?P<cam>\d)_f\d{7}\.jpg"), "0005_c2_f0046985.jpg")


def read_dukemtmc(root: Path, *, skip_bad_names: bool = False) -> ReidDataset:
    """``root`` is the ``DukeMTMC-reID/`` folder or the folder holding it."""
    return read_market_layout(
        "dukemtmc", root, DUKE_NAMES, skip_bad_names=skip_bad_names, release_dirs=("DukeMTMC-reID",)
    )
