"""The people in what the user passes: image files and folders of them, each image a scene photo or (``--crops``)
one person's crop.

A scene photo goes through the same detector as video ingest (``video.detector_choice.choose_detector``) and
``video.crop_person``; a person is kept when the detector is as sure as a search query needs
(``video.crops.QUERY_MIN_SCORE``) and the crop is large enough to show someone. People found in one photo are
different people: the photo is their cannot-link key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidkit.album.outputs import OutputItem
from reidkit.errors import ConfigError, ImageError
from reidkit.image_open import DECODE_ERRORS, open_image, upright_rgb
from reidkit.video.crops import MIN_QUERY_SIDE, QUERY_MIN_SCORE
from reidkit.video import Detector, crop_person


# reidkit.data.IMAGE_SUFFIXES, restated: importing reidkit.data loads torch, seconds before a mistyped folder fails.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


@dataclass(frozen=True)
class PersonCrop:
    """A person found: where (``item``), the crop, and the photo it shares with others (None for a crop file)."""

    item: OutputItem
    crop: np.ndarray
    frame: str | None


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """The image files named, and those under the folders named (recursively, in name order), each once."""
    if not paths:
        raise ConfigError("no photos given: pass image files or folders of them")
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if path.is_dir():
            found.update(dict.fromkeys(sorted(p for p in path.rglob("*") if _is_image(p))))
        elif path.is_file():
            found[path] = None
        else:
            raise ImageError(f"{path} does not exist; pass image files or folders of them")
    if not found:
        raise ConfigError(f"no images (.jpg, .jpeg, .png, .bmp) in {', '.join(str(p) for p in paths)}")
    for path in found:  # headers only: a file that is no image fails now, not after the model has loaded
        try:
            open_image(path).close()
        except DECODE_ERRORS as exc:
            raise _unreadable(path, exc) from exc
    return list(found)


def _unreadable(path: Path, exc: BaseException) -> ImageError:
    return ImageError(f"{path} cannot be read as an image ({exc}); remove it or pass JPEG / PNG files")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB, or ``ImageError`` naming the file when it cannot be read as an image."""
    try:
        with open_image(path) as image:
            return np.asarray(upright_rgb(image))
    except DECODE_ERRORS as exc:
        raise _unreadable(path, exc) from exc


def sightings(
    files: Sequence[Path], detector: Detector | None, min_score: float = QUERY_MIN_SCORE
) -> Iterator[PersonCrop]:
    """Every person in ``files``: each file whole when ``detector`` is None (crops), else each detection."""
    for path in files:
        image = read_rgb(path)
        if detector is None:
            yield PersonCrop(OutputItem(path), image, None)
            continue
        found = detector.detect(image)
        for row in found[found[:, 4] >= min_score]:
            box = tuple(float(v) for v in row[:4])
            crop = crop_person(image, box)
            if min(crop.shape[:2]) >= MIN_QUERY_SIDE:
                yield PersonCrop(OutputItem(path, box), crop, str(path))  # type: ignore[arg-type]
