"""Turn a user's labelled crops (from a folder tree or a CSV) into a ``ReidDataset`` with reidkit's rules.

People and cameras arrive as names, so they are numbered in sorted order (persons from 1, keeping 0 for
distractors; cameras from 0), which makes the numbering the same on every machine and every run.

Without an explicit split there is no training set, and each identity's first crop (sorted by path) from each
camera becomes a query while the rest form the gallery. Without camera labels, queries get camid 0 and gallery
crops camid 1, so the Market-1501 rule that drops same-camera matches never drops anything: every other crop of
the person counts as a correct match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reidkit.data.types import ImageRecord, ReidDataset
from reidkit.errors import DatasetError

SPLITS = ("train", "query", "gallery")
QUERY_CAMID_WITHOUT_CAMERAS, GALLERY_CAMID_WITHOUT_CAMERAS = 0, 1


@dataclass(frozen=True)
class LabelledCrop:
    """One crop as the user labelled it; ``camera`` and ``split`` are None where the source has none."""

    path: Path
    person: str
    camera: str | None
    split: str | None


def build_user_dataset(name: str, root: Path, crops: list[LabelledCrop]) -> ReidDataset:
    """Number persons and cameras, apply the split (given or derived), and return the dataset.

    The callers guarantee that either every crop has a camera or none has, and likewise for the split, since only
    they can point at the offending folder or CSV line.
    """
    if not crops:
        raise DatasetError(f"{root}: no images found; see docs/datasets.md for the expected layout")
    has_cameras = crops[0].camera is not None
    pid_of = {person: pid for pid, person in enumerate(sorted({c.person for c in crops}), start=1)}
    camid_of = {camera: camid for camid, camera in enumerate(sorted({c.camera for c in crops if c.camera}))}
    split_of = _given_splits(crops) if crops[0].split is not None else _derived_splits(crops)
    subsets: dict[str, list[ImageRecord]] = {split: [] for split in SPLITS}
    for crop in sorted(crops, key=lambda c: c.path):
        split = split_of[crop.path]
        if crop.camera is not None:
            camid = camid_of[crop.camera]
        else:
            camid = GALLERY_CAMID_WITHOUT_CAMERAS if split == "gallery" else QUERY_CAMID_WITHOUT_CAMERAS
        subsets[split].append(ImageRecord(crop.path, pid_of[crop.person], camid))
    return ReidDataset(name, root, subsets["train"], subsets["query"], subsets["gallery"], has_cameras=has_cameras)


def _given_splits(crops: list[LabelledCrop]) -> dict[Path, str]:
    return {c.path: c.split for c in crops if c.split is not None}


def _derived_splits(crops: list[LabelledCrop]) -> dict[Path, str]:
    """First crop per (person, camera) in path order is the query; everything else is gallery."""
    split_of: dict[Path, str] = {}
    seen: set[tuple[str, str | None]] = set()
    for crop in sorted(crops, key=lambda c: c.path):
        key = (crop.person, crop.camera)
        split_of[crop.path] = "gallery" if key in seen else "query"
        seen.add(key)
    return split_of
