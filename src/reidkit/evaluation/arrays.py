"""Input coercion shared by the evaluation functions, which accept NumPy arrays and torch tensors alike.

Converting here, once, keeps the numeric code below free of type switches and makes every user-facing shape or
value problem surface as the same one-line ``ReidkitError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reidkit.errors import ReidkitError


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy view of ``value`` (a torch tensor is detached and moved to the CPU, without a copy when possible)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_labels(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """Identity or camera labels as a 1-D int64 array, checked against the length the caller expects."""
    array = to_numpy(value)
    if array.ndim != 1:
        raise ReidkitError(f"{name} must be a 1-D array of integers, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.array_equal(array, np.round(array)):
            raise ReidkitError(f"{name} must hold integers, got dtype {array.dtype}")
    if length is not None and array.shape[0] != length:
        raise ReidkitError(f"{name} has {array.shape[0]} entries but the matching matrix axis has {length}")
    return array.astype(np.int64, copy=False)


def as_distance_matrix(value: Any, name: str) -> np.ndarray:
    """A 2-D float distance matrix that keeps float32 / float64 as given, so that ties are neither made nor broken.

    Integer and half-precision inputs are widened exactly (float64 holds every int32, float32 every float16).
    """
    array = to_numpy(value)
    if array.ndim != 2:
        raise ReidkitError(f"{name} must be a 2-D matrix, got shape {array.shape}")
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ReidkitError(f"{name} must hold numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
    return array


def as_features(value: Any, name: str) -> np.ndarray:
    """A 2-D float32 feature matrix without NaN or infinity (one such row would poison every distance it touches)."""
    array = to_numpy(value)
    if array.ndim != 2:
        raise ReidkitError(f"{name} must be a 2-D (num_images, dim) matrix, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ReidkitError(f"{name} must hold numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise ReidkitError(f"{name} row {bad} contains NaN or infinity: re-extract the features")
    return array
