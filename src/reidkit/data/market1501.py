"""Market-1501 and the datasets that copy its folder layout (DukeMTMC-reID, the shared CUHK03 benchmark).

The layout is three folders of crops whose file names carry the labels, so the only way to get labels wrong is to
misread a name: names are matched strictly and a name that does not match stops the load (or, on request, is
skipped and reported) rather than being guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reidkit.data.types import ImageRecord, ReidDataset
from reidkit.data.image_files import image_files
from reidkit.errors import DatasetError

TRAIN_DIR, QUERY_DIR, GALLERY_DIR, MULTI_QUERY_DIR = "bounding_box_train", "query", "bounding_box_test", "gt_bbox"
JUNK_PID = -1
DISTRACTOR_PID = 0
# Files that image tools drop beside crops (Market-1501's own zip ships Thumbs.db); everything else must parse.


@dataclass(frozen=True)
class NamingScheme:
    """How one dataset spells labels in its file names: a regex with ``pid`` and ``cam`` groups."""

    pattern: re.Pattern[str]
    example: str

    def parse(self, name: str) -> tuple[int, int] | None:
        """``(pid, camid)`` with camid 0-based, or None when the name is not in this scheme."""
        match = self.pattern.fullmatch(name)
        if match is None or int(match["cam"]) < 1:
            return None
        return int(match["pid"]), int(match["cam"]) - 1


# The official release names 24 of its crops ``*.jpg.jpg`` (6 queries, 18 gallery images, e.g.
# ``1488_c1s6_023021_00.jpg.jpg``) and counts them in its 3,368 / 19,732 totals, so the doubled suffix is part of
# the naming, not a damaged name to skip.
MARKET_NAMES = NamingScheme(
    re.compile(r"(?P<pid>-1|\d{4})_c(?P<cam>\d)s\d_\d{6}_\d{2}\.jpg(?:\.jpg)?"), "0002_c1s1_000451_03.jpg"
)


def read_market1501(root: Path, *, skip_bad_names: bool = False) -> ReidDataset:
    """Market-1501: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` and optionally ``gt_bbox/``.

    ``root`` may also be the folder holding ``Market-1501-v15.09.15/`` (the name the official zip unpacks to).
    """
    return read_market_layout(
        "market1501", root, MARKET_NAMES, skip_bad_names=skip_bad_names, release_dirs=("Market-1501-v15.09.15",)
    )


def read_market_layout(
    name: str,
    root: Path,
    scheme: NamingScheme,
    *,
    skip_bad_names: bool,
    release_dirs: tuple[str, ...] = (),
) -> ReidDataset:
    """Read a Market-layout dataset, applying the official rules.

    Junk crops (pid -1) are dropped everywhere; distractors (pid 0) exist only to confuse the ranking, so they are
    kept in the gallery and dropped elsewhere. Multi-query crops are kept only for identities that have a query,
    since those are the only ones multi-query evaluation pools.
    """
    root = _dataset_root(Path(root), release_dirs)
    skipped: list[tuple[Path, str]] = []

    def read(folder: str, keep_distractors: bool) -> list[ImageRecord]:
        records = []
        for path in image_files(root / folder):
            labels = scheme.parse(path.name)
            if labels is None:
                reason = f"file name does not match {name} naming, e.g. {scheme.example}"
                if not skip_bad_names:
                    raise DatasetError(f"{path}: {reason}; rename or remove it, or pass skip_bad_names=True")
                skipped.append((path, reason))
                continue
            pid, camid = labels
            if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
                continue
            records.append(ImageRecord(path, pid, camid))
        return records

    for folder in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR):
        if not (root / folder).is_dir():
            raise DatasetError(
                f"{root / folder}: folder missing; {name} expects {TRAIN_DIR}/, {QUERY_DIR}/ and {GALLERY_DIR}/ "
                f"(optionally {MULTI_QUERY_DIR}/) directly under the dataset root"
            )
    train = read(TRAIN_DIR, keep_distractors=False)
    query = read(QUERY_DIR, keep_distractors=False)
    gallery = read(GALLERY_DIR, keep_distractors=True)
    multi_query: list[ImageRecord] = []
    if (root / MULTI_QUERY_DIR).is_dir():
        query_pids = {r.pid for r in query}
        multi_query = [r for r in read(MULTI_QUERY_DIR, keep_distractors=False) if r.pid in query_pids]
    return ReidDataset(name, root, train, query, gallery, multi_query=multi_query, skipped=skipped)


def _dataset_root(root: Path, release_dirs: tuple[str, ...]) -> Path:
    """Accept either the dataset folder itself or the folder its official archive was unpacked into."""
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist; pass the folder holding {TRAIN_DIR}/")
    if not (root / TRAIN_DIR).is_dir():
        for release in release_dirs:
            if (root / release / TRAIN_DIR).is_dir():
                return root / release
    return root
