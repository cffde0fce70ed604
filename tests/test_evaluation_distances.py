"""Blocked distance matrices against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidkit.errors import ReidkitError
from reidkit.evaluation import compute_distance_matrix


def _features(seed: int, rows: int, dim: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32) * 3


def test_squared_euclidean_matches_brute_force() -> None:
    qf, gf = _features(0, 37), _features(1, 53)
    expected = ((qf[:, None, :].astype(np.float64) - gf[None, :, :]) ** 2).sum(axis=2)
    result = compute_distance_matrix(qf, gf, "euclidean", block_size=5)
    assert result.dtype == np.float32 and result.shape == (37, 53)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-3)


def test_cosine_matches_brute_force() -> None:
    qf, gf = _features(2, 19), _features(3, 41)
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    expected = 1.0 - qn.astype(np.float64) @ gn.T.astype(np.float64)
    result = compute_distance_matrix(torch.from_numpy(qf), torch.from_numpy(gf), "cosine", block_size=4)
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_block_size_does_not_change_the_result_beyond_rounding() -> None:
    qf, gf = _features(4, 30), _features(5, 20)
    whole = compute_distance_matrix(qf, gf, block_size=4096)
    for block_size in (1, 7, 29):
        np.testing.assert_allclose(compute_distance_matrix(qf, gf, block_size=block_size), whole, rtol=1e-5)


def test_identical_features_are_at_distance_zero_never_negative() -> None:
    features = _features(6, 50, dim=512) * 100
    for metric in ("euclidean", "cosine"):
        result = compute_distance_matrix(features, features, metric)
        assert (result >= 0).all()
        assert np.abs(np.diag(result)).max() <= 1e-3 * result.max()


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ReidkitError, match="dimension 24 but gallery features 8"):
        compute_distance_matrix(_features(0, 3), _features(1, 3, dim=8))
    with pytest.raises(ReidkitError, match="unknown metric 'manhattan'"):
        compute_distance_matrix(_features(0, 3), _features(1, 3), "manhattan")  # type: ignore[arg-type]
    broken = _features(0, 3)
    broken[2, 5] = np.nan
    with pytest.raises(ReidkitError, match="query features row 2 contains NaN"):
        compute_distance_matrix(broken, _features(1, 3))
