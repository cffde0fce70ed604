"""The project's shared CUHK03 benchmark: a tar in Market-1501 layout that tests, demos and benchmarks unpack once."""

from __future__ import annotations

import tarfile
from pathlib import Path

from reidkit.data.atomic_dir import publish_atomically
from reidkit.errors import DatasetError

SHARED_CUHK03_NAME = "cuhk03-detected-64x128"
SHARED_CUHK03_TAR = Path("datasets") / f"{SHARED_CUHK03_NAME}.tar"
_MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


def prepare_shared_cuhk03(shared_dir: Path, data_dir: Path) -> Path:
    """Unpack ``<shared_dir>/datasets/cuhk03-detected-64x128.tar`` into ``data_dir`` once; return the dataset root.

    Safe to call from several processes at once (each unpacks privately, the first rename wins) and cheap after
    the first call, since an existing root is trusted: it can only have appeared complete.
    """
    shared_dir, data_dir = Path(shared_dir), Path(data_dir)
    root = data_dir / SHARED_CUHK03_NAME
    if not root.exists():
        tar_path = shared_dir / SHARED_CUHK03_TAR
        if not tar_path.is_file():
            raise DatasetError(
                f"{tar_path}: shared CUHK03 benchmark not found; pass the folder holding datasets/{tar_path.name} "
                "(the project's ../shared)"
            )

        def unpack(scratch: Path) -> Path:
            try:
                with tarfile.open(tar_path) as archive:
                    archive.extractall(scratch, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise DatasetError(f"{tar_path}: cannot unpack ({exc}); check the file is a complete tar") from exc
            unpacked = scratch / SHARED_CUHK03_NAME
            if not unpacked.is_dir():
                raise DatasetError(f"{tar_path}: has no top-level {SHARED_CUHK03_NAME}/ folder; wrong archive?")
            return unpacked

        publish_atomically(root, unpack)
    missing = [name for name in _MARKET_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise DatasetError(f"{root}: exists but lacks {', '.join(missing)}/; delete the folder so it is unpacked again")
    return root
