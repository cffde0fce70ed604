"""The torch ``Dataset`` over ``ImageRecord``s that training and feature extraction both read through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from reidkit.data.images import read_image
from reidkit.data.types import ImageRecord
from reidkit.errors import DatasetError


def relabel(records: Sequence[ImageRecord]) -> dict[int, int]:
    """Map each pid to a class index 0..C-1 in pid order, as a softmax classifier needs contiguous labels."""
    return {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}


class ImageDataset(Dataset[tuple[Any, int, int, int]]):
    """Yields ``(transform(image), label, camid, index)``; ``label`` is the pid, or its class with ``pid_to_label``.

    ``index`` is the position in ``records`` so that callers can map a batch back to files without a second list.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[[Image.Image], Any],
        pid_to_label: dict[int, int] | None = None,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.pid_to_label = pid_to_label
        if pid_to_label is not None:
            unmapped = {r.pid for r in self.records} - pid_to_label.keys()
            if unmapped:
                raise DatasetError(
                    f"pid_to_label has no class for pid(s) {sorted(unmapped)[:5]}; build it with relabel() on "
                    "these same records"
                )

    @property
    def labels(self) -> list[int]:
        """Every record's label, in order: what ``PKSampler`` groups by."""
        if self.pid_to_label is None:
            return [r.pid for r in self.records]
        return [self.pid_to_label[r.pid] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[Any, int, int, int]:
        record = self.records[index]
        label = record.pid if self.pid_to_label is None else self.pid_to_label[record.pid]
        return self.transform(read_image(record.path)), label, record.camid, index
