"""Market-1501's attribute labels (Lin et al., Pattern Recognition 2019): ``market_attribute.mat`` as value indices
of the ``market1501`` attribute schema, per identity.

The file has one struct per split (``train``: the 751 training identities, ``test``: the 750 test identities), each
holding one 1 x N array per label plus ``image_index`` (the 4-digit identities). The two structs list their fields
in different orders, so every field is read by its name, never by its position. Codes are 1 / 2 (no / yes, or the
two values in the schema's order) and 1..4 for age; a colour group takes the one colour coded 2, or ``other`` where
an identity has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reidkit.attribute_schema import (
    MARKET1501,
    MARKET1501_LOWER_COLOURS,
    MARKET1501_UPPER_COLOURS,
    AttributeSchema,
)
from reidkit.errors import DatasetError

Split = Literal["train", "test"]

# Each schema group read from one field of the file, with the codes 1..N meaning the group's values in order.
SINGLE_FIELD_GROUPS = {
    "gender": "gender", "age": "age", "hair": "hair", "sleeve": "up", "lower_length": "down",
    "lower_type": "clothes", "hat": "hat", "backpack": "backpack", "bag": "bag", "handbag": "handbag",
}
# Each colour group read from one yes/no field per colour: prefix + colour name.
COLOUR_GROUPS = {"upper": ("up", MARKET1501_UPPER_COLOURS), "lower": ("down", MARKET1501_LOWER_COLOURS)}


@dataclass(frozen=True)
class AttributeLabels:
    """Every labelled identity's value index in each group of ``schema`` (in the schema's group order)."""

    schema: AttributeSchema
    by_pid: dict[int, tuple[int, ...]]
    source: Path

    def values(self, pid: int) -> dict[str, str]:
        """One identity's labels by name: ``{"gender": "female", ...}``."""
        return {g.name: g.values[i] for g, i in zip(self.schema.groups, self.by_pid[pid], strict=True)}

    def table(self, pids: list[int], missing: int) -> np.ndarray:
        """(len(pids), groups) value indices, ``missing`` for an identity without labels."""
        rows = [self.by_pid.get(pid, (missing,) * len(self.schema.groups)) for pid in pids]
        return np.asarray(rows, dtype=np.int64).reshape(len(pids), len(self.schema.groups))


def read_market1501_attributes(path: Path | str, split: Split) -> AttributeLabels:
    """The labels of ``split`` from ``market_attribute.mat``; a missing or malformed file or field is one line."""
    path = Path(path)
    struct = _split_struct(path, split)
    pids = [_pid(path, split, raw) for raw in _field(struct, path, split, "image_index")]
    columns = [_group_column(struct, path, split, group.name, len(pids)) for group in MARKET1501.groups]
    by_pid = {pid: tuple(int(column[i]) for column in columns) for i, pid in enumerate(pids)}
    if len(by_pid) != len(pids):
        raise DatasetError(f"{path}: market_attribute.{split}.image_index lists an identity twice")
    return AttributeLabels(MARKET1501, by_pid, path)


def _split_struct(path: Path, split: Split) -> Any:
    from scipy.io import loadmat  # scipy.io is only needed here; keep `import reidkit.data` light

    if not path.is_file():
        raise DatasetError(f"{path}: attribute labels not found (Market-1501's market_attribute.mat)")
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises many kinds for a damaged or foreign file; one line is what helps
        raise DatasetError(f"{path}: not a MATLAB attribute file ({type(exc).__name__})") from exc
    try:
        return mat["market_attribute"][0, 0][split][0, 0]
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise DatasetError(f"{path}: has no market_attribute.{split} struct; is it Market-1501's labels?") from exc


def _field(struct: Any, path: Path, split: Split, name: str) -> np.ndarray:
    if name not in (struct.dtype.names or ()):
        raise DatasetError(f"{path}: market_attribute.{split} has no field {name!r}")
    return np.asarray(struct[name]).reshape(-1)


def _pid(path: Path, split: Split, raw: Any) -> int:
    text = str(np.asarray(raw).reshape(-1)[0]) if np.asarray(raw).size else ""
    if not text.isdigit():
        raise DatasetError(f"{path}: market_attribute.{split}.image_index has {text!r}, not a 4-digit identity")
    return int(text)


def _codes(struct: Any, path: Path, split: Split, name: str, count: int, largest: int) -> np.ndarray:
    codes = _field(struct, path, split, name).astype(np.int64)
    if codes.size != count or codes.min(initial=1) < 1 or codes.max(initial=1) > largest:
        raise DatasetError(
            f"{path}: market_attribute.{split}.{name} must hold {count} codes in 1..{largest}; found "
            f"{codes.size} in {codes.min(initial=0)}..{codes.max(initial=0)}"
        )
    return codes


def _group_column(struct: Any, path: Path, split: Split, group: str, count: int) -> np.ndarray:
    """One group's value index per identity."""
    if group in SINGLE_FIELD_GROUPS:
        largest = len(MARKET1501.group(group).values)
        return _codes(struct, path, split, SINGLE_FIELD_GROUPS[group], count, largest) - 1
    prefix, colours = COLOUR_GROUPS[group]
    marked = np.stack([_codes(struct, path, split, prefix + c, count, 2) == 2 for c in colours], axis=1)
    several = np.flatnonzero(marked.sum(axis=1) > 1)
    if several.size:
        raise DatasetError(f"{path}: market_attribute.{split}: entry {several[0] + 1} marks several {group} colours")
    other = len(colours)  # the schema's last value
    return np.where(marked.any(axis=1), marked.argmax(axis=1), other)
