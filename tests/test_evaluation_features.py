"""Feature files, multi-query pooling and evaluate_features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidkit.errors import ReidkitError
from reidkit.evaluation import (
    compute_distance_matrix,
    evaluate,
    evaluate_features,
    load_features,
    pool_multi_query,
    rerank_features,
    save_features,
)


def _labelled(seed: int, rows: int, dim: int = 16):
    rng = np.random.default_rng(seed)
    pids = rng.integers(1, 6, rows)
    centres = np.random.default_rng(99).standard_normal((6, dim))
    features = (centres[pids] + 0.8 * rng.standard_normal((rows, dim))).astype(np.float32)
    return features, pids, rng.integers(0, 3, rows)


def test_round_trip_with_and_without_paths(tmp_path) -> None:
    features, pids, camids = _labelled(0, 12)
    paths = [f"crops/{i:04d}.jpg" for i in range(12)]
    save_features(tmp_path / "q.npz", torch.from_numpy(features), pids, camids, paths)
    loaded = load_features(tmp_path / "q.npz")
    np.testing.assert_array_equal(loaded.features, features)
    np.testing.assert_array_equal(loaded.pids, pids)
    np.testing.assert_array_equal(loaded.camids, camids)
    assert loaded.paths == paths
    assert len(loaded) == 12
    save_features(tmp_path / "sub" / "g.npz", features.astype(np.float64), pids, camids)
    plain = load_features(tmp_path / "sub" / "g.npz")
    assert plain.paths is None and plain.features.dtype == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.npz", "sub"]  # no temporary file left behind


def test_saving_refuses_mismatched_labels_and_keeps_the_old_file(tmp_path) -> None:
    features, pids, camids = _labelled(1, 5)
    target = save_features(tmp_path / "f.npz", features, pids, camids)
    with pytest.raises(ReidkitError, match="field 'camids' must have shape \\(5,\\)"):
        save_features(target, features, pids, camids[:4])
    np.testing.assert_array_equal(load_features(target).camids, camids)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.zeros((3, 2)), "camids": np.zeros(3, int)}, "has no 'pids' array"),
        ({"features": np.zeros(3), "pids": np.zeros(3, int), "camids": np.zeros(3, int)}, "'features' must be 2-D"),
        ({"features": np.zeros((3, 2)), "pids": np.zeros(2, int), "camids": np.zeros(3, int)}, "'pids' must have"),
        ({"features": np.zeros((3, 2)), "pids": np.full(3, 1.5), "camids": np.zeros(3, int)}, "'pids' must hold int"),
        ({"features": np.full((2, 2), np.nan), "pids": np.zeros(2, int), "camids": np.zeros(2, int)}, "NaN or inf"),
        ({"features": np.zeros((1, 2)), "pids": np.array([object()]), "camids": np.zeros(1, int)}, "'pids' cannot be"),
    ],
)
def test_malformed_files_are_refused_naming_file_and_field(tmp_path, arrays, message) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ReidkitError, match=message) as error:
        load_features(path)
    assert str(path) in str(error.value)


def test_files_that_are_not_npz_are_refused(tmp_path) -> None:
    with pytest.raises(ReidkitError, match="does not exist"):
        load_features(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not numbers")
    with pytest.raises(ReidkitError, match="not a zip archive"):
        load_features(text)
    single = tmp_path / "single.npz"
    with single.open("wb") as stream:
        np.save(stream, np.zeros((2, 2)))
    with pytest.raises(ReidkitError, match="not a zip archive"):
        load_features(single)
    truncated = tmp_path / "cut.npz"
    save_features(truncated, *_labelled(2, 4))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(ReidkitError, match="not a readable .npz"):
        load_features(truncated)


def test_pooling_averages_or_maxes_each_identity_camera_group() -> None:
    features = np.array([[1, 0], [3, 4], [5, 8], [2, 2]], dtype=np.float32)
    pids = np.array([7, 7, 3, 7])
    camids = np.array([1, 1, 0, 2])
    mean, mean_pids, mean_cams = pool_multi_query(features, pids, camids, "mean")
    np.testing.assert_array_equal(mean_pids, [3, 7, 7])
    np.testing.assert_array_equal(mean_cams, [0, 1, 2])
    np.testing.assert_array_equal(mean, [[5, 8], [2, 2], [2, 2]])
    maximum, _, _ = pool_multi_query(features, pids, camids, "max")
    np.testing.assert_array_equal(maximum, [[5, 8], [3, 4], [2, 2]])
    with pytest.raises(ReidkitError, match="unknown multi-query pooling"):
        pool_multi_query(features, pids, camids, "median")  # type: ignore[arg-type]


def test_evaluate_features_follows_the_protocol_options() -> None:
    qf, q_pids, q_cams = _labelled(3, 40)
    gf, g_pids, g_cams = _labelled(4, 150)
    plain = evaluate_features(qf, q_pids, q_cams, gf, g_pids, g_cams, metric="cosine")
    expected = evaluate(compute_distance_matrix(qf, gf, "cosine"), q_pids, g_pids, q_cams, g_cams)
    assert {k: plain[k] for k in expected} == expected
    assert (plain["metric"], plain["rerank"], plain["query_mode"], plain["k1"]) == ("cosine", False, "single", None)

    reranked = evaluate_features(qf, q_pids, q_cams, gf, g_pids, g_cams, rerank=True, k1=10, k2=3, lambda_value=0.2)
    expected = evaluate(rerank_features(qf, gf, "euclidean", 10, 3, 0.2), q_pids, g_pids, q_cams, g_cams)
    assert {k: reranked[k] for k in expected} == expected
    assert (reranked["k1"], reranked["k2"], reranked["lambda_value"]) == (10, 3, 0.2)

    pooled = evaluate_features(qf, q_pids, q_cams, gf, g_pids, g_cams, multi_query="max", max_rank=7)
    groups = len(set(zip(q_pids.tolist(), q_cams.tolist(), strict=True)))
    assert pooled["num_query"] == groups and pooled["query_mode"] == "multi-max" and len(pooled["cmc"]) == 7


def test_evaluate_features_refuses_mismatched_inputs() -> None:
    qf, q_pids, q_cams = _labelled(5, 10)
    gf, g_pids, g_cams = _labelled(6, 30)
    with pytest.raises(ReidkitError, match="query pids has 9 entries"):
        evaluate_features(qf, q_pids[:9], q_cams, gf, g_pids, g_cams)
    with pytest.raises(ReidkitError, match="unknown metric"):
        evaluate_features(qf, q_pids, q_cams, gf, g_pids, g_cams, metric="l1")  # type: ignore[arg-type]
