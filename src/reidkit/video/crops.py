"""Cutting a person out of a frame, and judging how much that crop is worth to the track's re-id feature.

A track's feature is a weighted mean of its crops' features, so a few bad crops (a person half out of the frame, a
tiny far-away figure, a doubtful detection) should count for less than the clear ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Re-id models look at 256x128 (or 384x128) inputs: a crop this tall or taller keeps all the detail they can use.
FULL_DETAIL_HEIGHT_PX = 128.0
# A box this close to the frame edge is taken to be cut off by it.
BORDER_MARGIN_PX = 2.0
BORDER_PENALTY = 0.5
# A person found in a photo (a search query, an album's scene) must be a confident detection: detectors report weak
# boxes too, which the tracker feeds on.
QUERY_MIN_SCORE = 0.5
# The smallest person crop worth searching with or grouping: far below the models' 64-128 px input width.
MIN_QUERY_SIDE = 16


def crop_person(image: np.ndarray, box: Sequence[float] | np.ndarray, pad: float = 0.0) -> np.ndarray:
    """The xyxy ``box`` widened by ``pad`` (a fraction of its width/height on each side), clipped to the frame.

    Returns a contiguous copy so keeping the crop does not keep the whole frame alive.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    dx, dy = (x1 - x0) * pad, (y1 - y0) * pad
    left, top = max(0, int(np.floor(x0 - dx))), max(0, int(np.floor(y0 - dy)))
    right, bottom = min(width, int(np.ceil(x1 + dx))), min(height, int(np.ceil(y1 + dy)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {tuple(box[:4])} lies outside the {width}x{height} frame")
    return np.ascontiguousarray(image[top:bottom, left:right])


def crop_quality(box: Sequence[float] | np.ndarray, score: float, frame_shape: Sequence[int]) -> float:
    """Weight in [0, 1] of a crop for track-level feature pooling: score x size factor x border factor.

    - score: the detector's confidence;
    - size factor: box height / 128 px, capped at 1 (smaller crops are upsampled and carry less detail);
    - border factor: 0.5 when the box touches the frame edge (the person is probably cut off), else 1.
    """
    height, width = frame_shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    size = min(1.0, max(y1 - y0, 0.0) / FULL_DETAIL_HEIGHT_PX)
    touches = (
        x0 <= BORDER_MARGIN_PX
        or y0 <= BORDER_MARGIN_PX
        or x1 >= width - BORDER_MARGIN_PX
        or y1 >= height - BORDER_MARGIN_PX
    )
    border = BORDER_PENALTY if touches else 1.0
    return float(np.clip(score, 0.0, 1.0)) * size * border
