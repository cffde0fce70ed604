"""The project's shared benchmarks (CUHK03 in Market-1501 layout, and Market-1501 itself): tars that tests, demos and
benchmarks unpack once."""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

from reidkit.data.atomic_dir import publish_atomically
from reidkit.data.market1501 import MARKET_NAMES, read_market_layout
from reidkit.data.types import ImageRecord, ReidDataset
from reidkit.errors import ConfigError, DatasetError

SHARED_CUHK03_NAME = "cuhk03-detected-64x128"
SHARED_CUHK03_TAR = Path("datasets") / f"{SHARED_CUHK03_NAME}.tar"
SHARED_MARKET_NAME = "Market-1501-v15.09.15"
SHARED_MARKET_ATTRIBUTES = Path("datasets") / "market1501-attributes" / "market_attribute.mat"
SHARED_MARKET_TAR = Path("datasets") / "market1501.tar"
_MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")
# ``PPPP_cCsS_NNNNNN_00.jpg``: S is the camera pair the identity was filmed by (1..5).
_CAMERA_PAIR = re.compile(r"\d{4}_c\ds(?P<pair>\d)_")
CAMERA_PAIRS = (1, 2, 3, 4, 5)


def prepare_shared_cuhk03(shared_dir: Path, data_dir: Path) -> Path:
    """Unpack ``<shared_dir>/datasets/cuhk03-detected-64x128.tar`` into ``data_dir`` once; return the dataset root."""
    return _prepare_shared_tar(shared_dir, data_dir, SHARED_CUHK03_TAR, SHARED_CUHK03_NAME)


def prepare_shared_market1501(shared_dir: Path, data_dir: Path) -> Path:
    """Unpack ``<shared_dir>/datasets/market1501.tar`` into ``data_dir`` once; return the dataset root
    (``<data_dir>/Market-1501-v15.09.15``, the folder the official release unpacks to)."""
    return _prepare_shared_tar(shared_dir, data_dir, SHARED_MARKET_TAR, SHARED_MARKET_NAME)


def prepare_shared_market1501_attributes(shared_dir: Path, data_dir: Path) -> Path:
    """Copy the shared Market-1501 attribute labels into ``<data_dir>/market1501-attributes/`` once; return the
    file (the path the recipes with attributes name, beside the unpacked dataset)."""
    source = Path(shared_dir) / SHARED_MARKET_ATTRIBUTES
    if not source.is_file():
        raise DatasetError(
            f"{source}: Market-1501 attribute labels not found; pass the folder holding "
            f"{SHARED_MARKET_ATTRIBUTES.parent}/ (the project's ../shared)"
        )

    def copy(scratch: Path) -> Path:
        shutil.copyfile(source, scratch / source.name)
        return scratch

    folder = publish_atomically(Path(data_dir) / SHARED_MARKET_ATTRIBUTES.parent.name, copy)
    return folder / source.name


def _prepare_shared_tar(shared_dir: Path, data_dir: Path, tar_name: Path, top_folder: str) -> Path:
    """Unpack one of the shared Market-layout tars into ``data_dir`` once.

    Safe to call from several processes at once (each unpacks privately, the first rename wins) and cheap after
    the first call, since an existing root is trusted: it can only have appeared complete.
    """
    shared_dir, data_dir = Path(shared_dir), Path(data_dir)
    root = data_dir / top_folder
    if not root.exists():
        tar_path = shared_dir / tar_name
        if not tar_path.is_file():
            raise DatasetError(
                f"{tar_path}: shared benchmark not found; pass the folder holding datasets/{tar_path.name} "
                "(the project's ../shared)"
            )

        def unpack(scratch: Path) -> Path:
            try:
                with tarfile.open(tar_path) as archive:
                    archive.extractall(scratch, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise DatasetError(f"{tar_path}: cannot unpack ({exc}); check the file is a complete tar") from exc
            unpacked = scratch / top_folder
            if not unpacked.is_dir():
                raise DatasetError(f"{tar_path}: has no top-level {top_folder}/ folder; wrong archive?")
            return unpacked

        publish_atomically(root, unpack)
    missing = [name for name in _MARKET_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise DatasetError(f"{root}: exists but lacks {', '.join(missing)}/; delete the folder so it is unpacked again")
    return root


def read_shared_cuhk03(
    root: Path,
    *,
    train_pairs: list[int] | None = None,
    test_pairs: list[int] | None = None,
    skip_bad_names: bool = False,
) -> ReidDataset:
    """The shared benchmark, optionally cut by camera pair, so that one camera pair can stand in for a new site.

    Each CUHK03 identity was filmed by one of five camera pairs (``sS`` in the file name), and pairs differ in
    place, light and angle. Training on pair 1 and testing on pair 2 is therefore a domain shift measured on
    real data without copying folders: ``train_pairs=[1], test_pairs=[2]`` (source only), ``train_pairs=[2]``
    (the oracle, or the unlabelled target crops of adaptation). ``None`` keeps every pair.
    """
    dataset = read_market_layout("cuhk03_shared", root, MARKET_NAMES, skip_bad_names=skip_bad_names)
    train_keep, test_keep = _pairs("train_pairs", train_pairs), _pairs("test_pairs", test_pairs)
    dataset.train = _in_pairs(dataset.train, train_keep)
    dataset.query = _in_pairs(dataset.query, test_keep)
    dataset.gallery = _in_pairs(dataset.gallery, test_keep)
    if not (dataset.train and dataset.query and dataset.gallery):
        raise DatasetError(f"{dataset.root}: camera pairs {train_keep} / {test_keep} leave an empty split")
    return dataset


def camera_pair(record: ImageRecord) -> int:
    """The camera pair (1..5) of a crop of the shared benchmark."""
    match = _CAMERA_PAIR.match(record.path.name)
    if match is None:
        raise DatasetError(f"{record.path}: not a shared-benchmark name (PPPP_cCsS_NNNNNN_00.jpg)")
    return int(match["pair"])


def _pairs(option: str, pairs: list[int] | None) -> frozenset[int]:
    if pairs is None:
        return frozenset(CAMERA_PAIRS)
    if isinstance(pairs, int):
        pairs = [pairs]
    bad = [p for p in pairs if p not in CAMERA_PAIRS]
    if bad or not pairs:
        raise ConfigError(f"dataset option {option}: {pairs!r}; give camera pairs among {list(CAMERA_PAIRS)}")
    return frozenset(pairs)


def _in_pairs(records: list[ImageRecord], pairs: frozenset[int]) -> list[ImageRecord]:
    return [r for r in records if camera_pair(r) in pairs]
