"""A user's own crops as folders: ``root/<person>/[<camera>/]<image>``, optionally under train/query/gallery."""

from __future__ import annotations

from pathlib import Path

from reidkit.data.image_files import image_files
from reidkit.data.types import ReidDataset
from reidkit.data.user_crops import SPLITS, LabelledCrop, build_user_dataset
from reidkit.errors import DatasetError


def read_folder(root: Path) -> ReidDataset:
    """Read person folders directly under ``root``, or under ``root/train``, ``root/query``, ``root/gallery``.

    The split folders are used when ``query/`` and ``gallery/`` both exist (``train/`` is optional); otherwise
    the split is derived as described in ``reidkit.data.user_crops``. Camera sub-folders are all-or-nothing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: folder does not exist; pass a folder of <person>/[<camera>/]<image> crops")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if "query" in present and "gallery" in present:
        crops = [crop for split in present for crop in _person_crops(root / split, split)]
    elif present:
        raise DatasetError(
            f"{root}: has {'/, '.join(present)}/ but not both query/ and gallery/; add the missing split folder, "
            "or move the person folders directly under the root to have the split derived"
        )
    else:
        crops = _person_crops(root, None)
    with_cameras = {c.camera is not None for c in crops}
    if len(with_cameras) > 1:
        example = next(c for c in crops if c.camera is None)
        raise DatasetError(
            f"{example.path.parent}: person folder holds images directly while others use camera sub-folders; "
            "use camera folders for every person or for none"
        )
    return build_user_dataset("folder", root, crops)


def _person_crops(base: Path, split: str | None) -> list[LabelledCrop]:
    crops = []
    for person_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        images = image_files(person_dir)
        camera_dirs = sorted(p for p in person_dir.iterdir() if p.is_dir())
        if images and camera_dirs:
            raise DatasetError(
                f"{person_dir}: holds both images and sub-folders; put every image in a camera folder or none"
            )
        crops += [LabelledCrop(path, person_dir.name, None, split) for path in images]
        for camera_dir in camera_dirs:
            crops += [LabelledCrop(path, person_dir.name, camera_dir.name, split) for path in image_files(camera_dir)]
    return crops
