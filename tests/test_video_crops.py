"""Person crops clipped to the frame, and the quality weight that pools them into a track feature."""

from __future__ import annotations

import numpy as np
import pytest

from reidkit.video import crop_person, crop_quality

FRAME_SHAPE = (576, 768, 3)


@pytest.fixture()
def frame() -> np.ndarray:
    rows, cols = np.mgrid[0 : FRAME_SHAPE[0], 0 : FRAME_SHAPE[1]]
    return np.stack([rows % 256, cols % 256, (rows + cols) % 256], axis=-1).astype(np.uint8)


def test_crop_is_exactly_the_box(frame: np.ndarray) -> None:
    crop = crop_person(frame, (100.0, 50.0, 140.0, 150.0))
    assert crop.shape == (100, 40, 3)
    np.testing.assert_array_equal(crop, frame[50:150, 100:140])
    assert crop.flags.c_contiguous and not np.shares_memory(crop, frame)


def test_padding_grows_the_crop_and_stops_at_the_frame_edge(frame: np.ndarray) -> None:
    assert crop_person(frame, (100, 50, 140, 150), pad=0.1).shape == (120, 48, 3)
    at_corner = crop_person(frame, (-30, -10, 50, 100), pad=0.2)
    np.testing.assert_array_equal(at_corner, frame[0:122, 0:66])
    far_corner = crop_person(frame, (700, 500, 800, 600))
    assert far_corner.shape == (76, 68, 3)


def test_box_outside_the_frame_or_negative_pad_is_rejected(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="outside"):
        crop_person(frame, (800, 10, 900, 100))
    with pytest.raises(ValueError, match="pad"):
        crop_person(frame, (10, 10, 50, 100), pad=-0.1)


def test_quality_prefers_confident_large_unclipped_people() -> None:
    centre_large = crop_quality((300, 100, 360, 260), 0.9, FRAME_SHAPE)
    assert centre_large == pytest.approx(0.9)
    assert crop_quality((300, 100, 360, 260), 0.6, FRAME_SHAPE) < centre_large
    small = crop_quality((300, 100, 330, 164), 0.9, FRAME_SHAPE)
    assert small == pytest.approx(0.9 * 64 / 128)
    touching = crop_quality((0, 100, 60, 260), 0.9, FRAME_SHAPE)
    assert touching == pytest.approx(0.45)
    assert crop_quality((700, 420, 768, 576), 0.9, FRAME_SHAPE) < centre_large
    for q in (centre_large, small, touching):
        assert 0.0 < q <= 1.0
