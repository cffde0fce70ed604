"""The camera / time filters of a search, and the per-vector fields an index needs to apply them itself.

One filter type serves every vector index: ``SearchFilters`` is what the user asked for (cameras, ``--after``,
``--before``). FAISS holds vectors only, so the search applies it to the rows of its shortlist (``admits``, read
from SQLite); Milvus holds each vector's ``VectorFields`` (camera, first and last wall-clock second) beside it and
applies the same filter inside the vector search (``milvus_index.filter_expression``), so a filter that keeps 1% of
the gallery does not have to dig through the other 99% first. Either way ``admits`` has the last word on every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from reidkit.store.rows import DetectionRow, epoch_seconds


@dataclass(frozen=True)
class SearchFilters:
    cameras: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(self.cameras) or self.after is not None or self.before is not None

    @property
    def after_epoch(self) -> float | None:
        return None if self.after is None else epoch_seconds(self.after)

    @property
    def before_epoch(self) -> float | None:
        return None if self.before is None else epoch_seconds(self.before)

    def admits(self, row: DetectionRow) -> bool:
        if self.cameras and row.camera not in self.cameras:
            return False
        if self.after is None and self.before is None:
            return True
        if row.wall_time is None:
            return False  # a video ingested without --start-time has no wall-clock time to compare
        moment = epoch_seconds(row.wall_time)
        if self.after_epoch is not None and moment < self.after_epoch:
            return False
        return self.before_epoch is None or moment <= self.before_epoch


@dataclass(frozen=True)
class VectorFields:
    """What a filtering index stores beside each vector, row-aligned with the ids: the camera name and the first /
    last wall-clock second (epoch; NaN for a video ingested without ``--start-time``). A crop's first and last are
    the same moment; a track spans its crops, so a track passes a time filter when its span overlaps it."""

    cameras: np.ndarray  # object array of str
    first_epoch: np.ndarray  # float64
    last_epoch: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.cameras)
