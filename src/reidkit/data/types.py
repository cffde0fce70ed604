"""The records every dataset reader returns, whatever the dataset's own layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One labelled crop. ``camid`` is 0-based; ``pid`` is the dataset's own identity number (0 = distractor)."""

    path: Path
    pid: int
    camid: int


@dataclass
class ReidDataset:
    """A dataset's official split: train identities are disjoint from query/gallery identities.

    ``multi_query`` holds the extra query crops (Market-1501's ``gt_bbox``) that multi-query evaluation pools per
    (identity, camera); it is empty where the dataset has none. ``has_cameras`` is False for user data without
    camera labels, whose query crops carry camid 0 and gallery crops camid 1 so that the Market-1501 "same
    camera" rule never removes a gallery crop. ``skipped`` lists the files a reader was told to skip, with why,
    so that callers can report them instead of losing data silently.
    """

    name: str
    root: Path
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    multi_query: list[ImageRecord] = field(default_factory=list)
    has_cameras: bool = True
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    def summary(self) -> str:
        rows = [("train", self.train), ("query", self.query), ("gallery", self.gallery)]
        if self.multi_query:
            rows.append(("multi-query", self.multi_query))
        lines = [f"{self.name} ({self.root})", f"  {'subset':<12}{'ids':>7}{'images':>9}{'cameras':>9}"]
        for label, records in rows:
            lines.append(
                f"  {label:<12}{len({r.pid for r in records}):>7}{len(records):>9}{len({r.camid for r in records}):>9}"
            )
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s), e.g. {self.skipped[0][0]}: {self.skipped[0][1]}")
        return "\n".join(lines)
