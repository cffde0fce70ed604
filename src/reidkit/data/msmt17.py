"""MSMT17 (V1 or V2): list files name each crop and its identity; the camera is in the file name.

A list line is ``0000/0000_000_01_0303morning_0015_0.jpg 0``: the path is relative to the train or test folder and
the name's third field is the 1-based camera (1..15).
"""

from __future__ import annotations

from pathlib import Path

from reidkit.data.types import ImageRecord, ReidDataset
from reidkit.errors import DatasetError

# (train folder, test folder) per release; V2 blurs faces and renames the folders.
VERSION_DIRS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
LIST_FILES = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")


def read_msmt17(root: Path, *, merge_val: bool = True) -> ReidDataset:
    """``root`` is ``MSMT17_V1/`` or ``MSMT17_V2/`` (or the folder holding one of them).

    The official training set is ``list_train`` plus ``list_val`` (32,621 crops), hence ``merge_val=True``; turn it
    off to hold the validation crops out. MSMT17 numbers train and test identities from 0 separately, so reidkit
    shifts them: train identities become 1..T and test identities T+1.., keeping 0 free for distractors and the
    train and test ids disjoint as in every other dataset.
    """
    root = Path(root)
    root, (train_dir, test_dir) = _find_release(root)
    missing = [name for name in LIST_FILES if not (root / name).is_file()]
    if missing:
        raise DatasetError(f"{root / missing[0]}: list file missing; MSMT17 expects {', '.join(LIST_FILES)} in {root}")
    train_lines = _read_list(root / "list_train.txt")
    val_lines = _read_list(root / "list_val.txt")
    num_train_ids = max((pid for _, pid, _ in train_lines + val_lines), default=-1) + 1

    def records(lines: list[tuple[str, int, int]], folder: str, pid_offset: int) -> list[ImageRecord]:
        return [ImageRecord(root / folder / rel, pid + pid_offset, camid) for rel, pid, camid in lines]

    train = records(train_lines + (val_lines if merge_val else []), train_dir, 1)
    query = records(_read_list(root / "list_query.txt"), test_dir, 1 + num_train_ids)
    gallery = records(_read_list(root / "list_gallery.txt"), test_dir, 1 + num_train_ids)
    return ReidDataset("msmt17", root, train, query, gallery)


def _find_release(root: Path) -> tuple[Path, tuple[str, str]]:
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist; pass the MSMT17_V1/ or MSMT17_V2/ folder")
    for base in (root, *(root / name for name in VERSION_DIRS)):
        for dirs in VERSION_DIRS.values():
            if all((base / d).is_dir() for d in dirs):
                return base, dirs
    layouts = " or ".join(f"{a}/ + {b}/" for a, b in VERSION_DIRS.values())
    raise DatasetError(f"{root}: no MSMT17 image folders found; expected {layouts} beside the list_*.txt files")


def _read_list(path: Path) -> list[tuple[str, int, int]]:
    """``(relative path, pid, 0-based camid)`` per line, rejecting any line that does not parse."""
    entries = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            rel, pid_text = fields
            pid = int(pid_text)
            camera = int(Path(rel).name.split("_")[2])
        except (ValueError, IndexError):
            raise DatasetError(
                f"{path}:{line_no}: expected '<pid>/<pid>_<n>_<camera>_<...>.jpg <pid>', got {line.strip()!r}"
            ) from None
        if pid < 0 or camera < 1:
            raise DatasetError(f"{path}:{line_no}: pid must be >= 0 and camera >= 1, got {line.strip()!r}")
        entries.append((rel, pid, camera - 1))
    return entries
