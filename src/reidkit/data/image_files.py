"""Which files are images, and the labels a Market-style file name carries: one rule for every reader and command."""

from __future__ import annotations

import re
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
# Market-style labels at the start of a file name: "0002_c1s1_000451_03.jpg", "0005_c2_f0046182.jpg". Lenient on
# purpose (the dataset readers check the full names): it labels crops a user passes to `reidkit extract`.
_LABELLED_NAME = re.compile(r"^(?P<pid>-?\d+)_c(?P<cam>\d+)")


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def labels_from_name(name: str) -> tuple[int, int]:
    """``(pid, camid)`` (camid 0-based) from a Market-style name, else ``(-1, -1)``."""
    match = _LABELLED_NAME.match(name)
    if match is None or int(match["cam"]) < 1:
        return -1, -1
    return int(match["pid"]), int(match["cam"]) - 1
