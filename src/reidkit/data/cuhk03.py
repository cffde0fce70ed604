"""CUHK03 from its official release: ``cuhk-03.mat`` (images) plus the CUHK03-NP new-protocol split files.

The images live inside a MATLAB v7.3 file (HDF5), so they are written out once, on the first load, to
``<root>/images_<variant>/`` under the names the new-protocol split files list (``<pair>_<person>_<view>_<n>.png``);
later loads only read the small split file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from PIL import Image
from tqdm import tqdm

from reidkit.data.atomic_dir import publish_atomically
from reidkit.data.types import ImageRecord, ReidDataset
from reidkit.errors import ConfigError, DatasetError

VARIANTS = ("detected", "labeled")
RAW_MAT = "cuhk-03.mat"
RELEASE_DIR = "cuhk03_release"  # what the official cuhk03_release.zip unpacks to
SPLIT_FILE = "cuhk03_new_protocol_config_{variant}.mat"
# Each identity has up to 10 crops per camera pair: the first 5 from the pair's camera A, the last 5 from camera B.
CROPS_PER_IDENTITY = 10


def read_cuhk03(root: Path, *, variant: str = "detected") -> ReidDataset:
    """The 767/700 new protocol (Zhong et al., CVPR 2017) on the ``detected`` or hand-``labeled`` boxes.

    Cameras are the two views of each camera pair (camid 0 = camera A, 1 = camera B): every identity was filmed by
    one pair only, so "same pid and same camid" already means "same physical camera" for the evaluation's rule.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"cuhk03 option variant={variant!r} is invalid; use one of {', '.join(VARIANTS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist; pass the folder holding {RAW_MAT}")
    split_path = root / SPLIT_FILE.format(variant=variant)
    if not split_path.is_file():
        raise DatasetError(
            f"{split_path}: new-protocol split file missing; put the CUHK03-NP split files "
            "(cuhk03_new_protocol_config_{detected,labeled}.mat from github.com/zhunzhong07/person-re-ranking) "
            f"in {root}"
        )
    image_dir = root / f"images_{variant}"
    if not image_dir.is_dir():
        mat_path = _raw_mat_path(root)
        publish_atomically(image_dir, lambda scratch: extract_cuhk03_images(mat_path, variant, scratch / "images"))
    split = _read_split(split_path)
    extracted = {p.name for p in image_dir.iterdir()}
    absent = [name for name in split["filelist"] if name not in extracted]
    if absent:
        raise DatasetError(
            f"{split_path}: lists {len(absent)} image(s) missing from {image_dir}, e.g. {absent[0]}; delete "
            f"{image_dir.name}/ to extract it again, or check the split file belongs to this release"
        )
    train, query, gallery = (
        [_record(image_dir, split, int(i), split_path) for i in split[key]]
        for key in ("train_idx", "query_idx", "gallery_idx")
    )
    return ReidDataset(f"cuhk03-{variant}", root, train, query, gallery)


def extract_cuhk03_images(mat_path: Path, variant: str, out_dir: Path) -> Path:
    """Write every non-empty crop of ``variant`` in ``mat_path`` to ``out_dir`` as PNG; return ``out_dir``.

    MATLAB stores arrays column-major, so HDF5 sees each cell array and image transposed: a camera pair is
    (10, identities) and an H x W x 3 image is (3, W, H). Identities missing from one camera have empty cells.
    """
    out_dir.mkdir(parents=True)
    try:
        mat = h5py.File(mat_path, "r")
    except OSError as exc:
        raise DatasetError(
            f"{mat_path}: not a MATLAB v7.3 (HDF5) file ({exc}); re-download cuhk03_release.zip"
        ) from exc
    with mat:
        if variant not in mat:
            raise DatasetError(f"{mat_path}: has no '{variant}' dataset; is this the official {RAW_MAT}?")
        pair_refs = np.asarray(mat[variant][()]).ravel()
        for pair, pair_ref in enumerate(pair_refs, start=1):
            cells = np.asarray(mat[pair_ref][()]).T
            if cells.ndim != 2 or cells.shape[1] != CROPS_PER_IDENTITY:
                raise DatasetError(
                    f"{mat_path}: {variant} camera pair {pair} has shape {cells.shape[::-1]} in HDF5, expected "
                    f"({CROPS_PER_IDENTITY}, identities); is this the official {RAW_MAT}?"
                )
            for person, row in enumerate(tqdm(cells, desc=f"cuhk03 {variant} pair {pair}", leave=False), start=1):
                for column, image_ref in enumerate(row):
                    pixels = np.asarray(mat[image_ref][()])
                    if pixels.ndim != 3 or pixels.size == 0:
                        continue
                    view = 1 if column < CROPS_PER_IDENTITY // 2 else 2
                    name = f"{pair}_{person:03d}_{view}_{column + 1:02d}.png"
                    Image.fromarray(np.ascontiguousarray(pixels.T.astype(np.uint8))).save(out_dir / name)
    return out_dir


def _raw_mat_path(root: Path) -> Path:
    for candidate in (root / RAW_MAT, root / RELEASE_DIR / RAW_MAT):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"{root / RAW_MAT}: not found (nor in {RELEASE_DIR}/); unzip the official cuhk03_release.zip into {root}"
    )


def _read_split(path: Path) -> dict[str, Any]:
    """The split file's fields, flattened, with 1-based MATLAB indices turned 0-based and checked."""
    try:
        raw = scipy.io.loadmat(path)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DatasetError(f"{path}: cannot read split file ({exc}); re-download it") from exc
    fields = ("train_idx", "query_idx", "gallery_idx", "labels", "filelist")
    missing = [name for name in fields if name not in raw]
    if missing:
        raise DatasetError(f"{path}: split file lacks {', '.join(missing)}; is it a CUHK03-NP config file?")
    labels = np.asarray(raw["labels"]).ravel().astype(np.int64)
    filelist = [_cell_text(cell, path) for cell in np.asarray(raw["filelist"]).ravel()]
    if len(filelist) != len(labels):
        raise DatasetError(f"{path}: filelist has {len(filelist)} entries but labels has {len(labels)}")
    split: dict[str, Any] = {"labels": labels, "filelist": filelist}
    for key in ("train_idx", "query_idx", "gallery_idx"):
        indices = np.asarray(raw[key]).ravel().astype(np.int64) - 1
        if indices.size and (indices.min() < 0 or indices.max() >= len(labels)):
            raise DatasetError(f"{path}: {key} holds indices outside 1..{len(labels)}")
        split[key] = indices
    return split


def _cell_text(cell: Any, path: Path) -> str:
    """A MATLAB cell of char as loadmat returns it: a nested array holding one string."""
    while isinstance(cell, np.ndarray):
        if cell.size != 1:
            raise DatasetError(f"{path}: filelist entry {cell!r} is not a single file name")
        cell = cell.item() if cell.dtype != object else cell.ravel()[0]
    return str(cell)


def _record(image_dir: Path, split: dict[str, Any], index: int, split_path: Path) -> ImageRecord:
    name = split["filelist"][index]
    parts = Path(name).stem.split("_")
    if len(parts) != 4 or parts[2] not in ("1", "2"):
        raise DatasetError(f"{split_path}: filelist entry {name!r} is not <pair>_<person>_<view>_<n>.png")
    return ImageRecord(image_dir / name, int(split["labels"][index]), int(parts[2]) - 1)
