"""A user's own crops listed in a CSV: header ``path,person,camera[,split]``, paths relative to the CSV's folder."""

from __future__ import annotations

import csv
from pathlib import Path

from reidkit.data.types import ReidDataset
from reidkit.data.user_crops import SPLITS, LabelledCrop, build_user_dataset
from reidkit.errors import DatasetError

REQUIRED_COLUMNS = ("path", "person", "camera")


def read_csv(root: Path, *, csv_file: str = "crops.csv") -> ReidDataset:
    """Read ``root`` as the CSV itself, or as a folder holding ``csv_file``.

    ``camera`` may be empty on every row (no camera labels) but not on some rows only; ``split`` is optional as
    a column, and when present every row needs one of train/query/gallery.
    """
    root = Path(root)
    path = root / csv_file if root.is_dir() else root
    if not path.is_file():
        raise DatasetError(f"{path}: CSV file not found; pass the CSV or the folder holding {csv_file}")
    crops: list[LabelledCrop] = []
    first_line: dict[Path, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise DatasetError(f"{path}:1: header lacks {', '.join(missing)}; expected path,person,camera[,split]")
        reader.fieldnames = header
        has_split = "split" in header
        for row in reader:
            line = reader.line_num
            values = {key: (row.get(key) or "").strip() for key in (*REQUIRED_COLUMNS, "split")}
            if None in row or not values["path"] or not values["person"]:
                raise DatasetError(f"{path}:{line}: row needs a path and a person (and no extra fields): {row}")
            split = values["split"] if has_split else None
            if has_split and split not in SPLITS:
                raise DatasetError(f"{path}:{line}: split {split!r} must be one of {', '.join(SPLITS)}")
            crop = LabelledCrop(path.parent / values["path"], values["person"], values["camera"] or None, split)
            if crops and (crop.camera is None) != (crops[0].camera is None):
                raise DatasetError(
                    f"{path}:{line}: camera is {'empty' if crop.camera is None else 'set'} here but not on the first "
                    "row; give every row a camera or leave it empty on all"
                )
            if crop.path in first_line:
                raise DatasetError(f"{path}:{line}: {values['path']} is already listed on line {first_line[crop.path]}")
            first_line[crop.path] = line
            crops.append(crop)
    return build_user_dataset("csv", path.parent, crops)
