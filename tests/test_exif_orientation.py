"""A phone photo stores its pixels as the sensor read them and the turn in EXIF (tag 0x0112); every reader of
reidkit (search query, feature extractor, album, the service's uploads, training reads) must see it upright, as
browsers and photo viewers show it. The photo here is a real CUHK03 crop of the shared data saved lying on its side
with orientation 6 (rotate 90 degrees clockwise to view)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidkit.album import read_rgb
from reidkit.data import read_image
from reidkit.inference.extractor import to_pil
from reidkit.search.query import load_query_image, looks_like_frame
from reidkit.service.limits import decode_image

ORIENTATION = 0x0112
CROP = "cuhk03-detected-64x128/bounding_box_test/0001_c1s1_000000_00.jpg"


@pytest.fixture(scope="module")
def phone_photo(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The sideways JPEG with orientation 6, and the upright pixels a viewer shows for it (its decoded pixels
    turned losslessly, so that the comparison is exact)."""
    tar_path = shared_dir / "datasets" / "cuhk03-detected-64x128.tar"
    if not tar_path.is_file():
        pytest.skip(f"shared benchmark {tar_path} is absent")
    with tarfile.open(tar_path) as tar:
        member = tar.extractfile(CROP)
        assert member is not None
        upright = Image.open(io.BytesIO(member.read())).convert("RGB")
    assert upright.size == (64, 128)  # a standing person: taller than wide
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor stored
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path = tmp_path_factory.mktemp("exif") / "phone.jpg"
    sideways.save(path, format="JPEG", quality=95, exif=exif)
    with Image.open(path) as stored:
        assert stored.size == (128, 64) and stored.getexif()[ORIENTATION] == 6
        expected = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    # The lossless turn of the decoded JPEG is the original crop up to JPEG's loss: the turn is the right way round.
    assert np.abs(expected.astype(int) - np.asarray(upright).astype(int)).mean() < 6
    return path, expected


def test_the_search_query_reads_a_phone_photo_upright(phone_photo: tuple[Path, np.ndarray]) -> None:
    path, expected = phone_photo
    seen = load_query_image(path)
    assert seen.shape == (128, 64, 3)
    assert np.array_equal(seen, expected)
    assert not looks_like_frame(seen)  # a crop of a standing person, not a frame to run the detector on


def test_training_reads_and_the_extractor_see_a_phone_photo_upright(phone_photo: tuple[Path, np.ndarray]) -> None:
    path, expected = phone_photo
    assert np.array_equal(np.asarray(read_image(path)), expected)
    assert np.array_equal(np.asarray(to_pil(path)), expected)
    with Image.open(path) as opened:  # a PIL image the caller opened itself still carries the turn
        assert np.array_equal(np.asarray(to_pil(opened)), expected)


def test_albums_read_a_phone_photo_upright(phone_photo: tuple[Path, np.ndarray]) -> None:
    path, expected = phone_photo
    assert np.array_equal(read_rgb(path), expected)


def test_a_service_upload_of_a_phone_photo_is_decoded_upright(phone_photo: tuple[Path, np.ndarray]) -> None:
    """The web page shows the photo upright and sends a box drawn on it, so the service must decode it so too."""
    path, expected = phone_photo
    decoded = decode_image(path.read_bytes(), 40_000_000)
    assert decoded.shape == (128, 64, 3)
    assert np.array_equal(decoded, expected)
