"""k-reciprocal re-ranking against the classic loop implementation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reidkit.errors import ReidkitError
from reidkit.evaluation import compute_distance_matrix, evaluate, re_ranking, rerank_features
from reidkit.evaluation.rerank import jaccard_distance, sparse_jaccard_distance


def _blocks(num_query: int, num_gallery: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    qf = rng.standard_normal((num_query, dim)).astype(np.float32)
    gf = rng.standard_normal((num_gallery, dim)).astype(np.float32)
    return qf, gf, compute_distance_matrix(qf, gf), compute_distance_matrix(qf, qf), compute_distance_matrix(gf, gf)


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"),
    [(20, 6, 0.3), (5, 1, 0.0), (7, 3, 1.0), (1, 2, 0.5), (3, 6, 0.3), (20, 1, 0.3), (4, 30, 0.7)],
)
def test_matches_the_classic_implementation(benchmark_common, k1: int, k2: int, lambda_value: float) -> None:
    _, _, q_g, q_q, g_g = _blocks(30, 120, 16, seed=k1 * 100 + k2)
    expected = benchmark_common.reference_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    result = re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    assert result.dtype == np.float32 and result.shape == (30, 120)
    np.testing.assert_array_equal(result, expected)


def test_more_neighbours_than_items(benchmark_common) -> None:
    _, _, q_g, q_q, g_g = _blocks(4, 9, 3, seed=1)
    np.testing.assert_array_equal(re_ranking(q_g, q_q, g_g), benchmark_common.reference_re_ranking(q_g, q_q, g_g))


@st.composite
def tied_blocks(draw):
    """Small integer distances (many ties, blocks not symmetric) in float32 or float64."""
    num_query, num_gallery = draw(st.integers(1, 6)), draw(st.integers(1, 14))
    size = num_query + num_gallery
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    joint = np.random.default_rng(seed).integers(0, 4, (size, size)).astype(dtype)
    q_g, q_q, g_g = joint[:num_query, num_query:], joint[:num_query, :num_query], joint[num_query:, num_query:]
    # Re-ranking normalises by each item's largest distance, so none may be at distance 0 from everything.
    assume(np.concatenate([q_q, q_g.T]).max(axis=0).min() > 0 and np.concatenate([q_g, g_g]).max(axis=0).min() > 0)
    k1, k2 = draw(st.integers(1, 12)), draw(st.integers(1, 5))
    lambda_value = draw(st.sampled_from([0.0, 0.3, 1.0]))
    return q_g, q_q, g_g, k1, k2, lambda_value


@settings(max_examples=60, deadline=None)
@given(tied_blocks())
def test_ties_break_by_index_like_a_stable_sort(benchmark_common, problem) -> None:
    q_g, q_q, g_g, k1, k2, lambda_value = problem
    expected = benchmark_common.reference_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    np.testing.assert_array_equal(re_ranking(q_g, q_q, g_g, k1, k2, lambda_value), expected)


def test_accepts_torch_tensors() -> None:
    _, _, q_g, q_q, g_g = _blocks(10, 40, 8, seed=2)
    as_torch = re_ranking(torch.from_numpy(q_g), torch.from_numpy(q_q), torch.from_numpy(g_g))
    np.testing.assert_array_equal(as_torch, re_ranking(q_g, q_q, g_g))


def test_rerank_features_uses_the_authors_distances() -> None:
    qf, gf, q_g, q_q, g_g = _blocks(12, 50, 8, seed=3)
    np.testing.assert_array_equal(rerank_features(qf, gf, "euclidean", 6, 2, 0.4), re_ranking(q_g, q_q, g_g, 6, 2, 0.4))
    # For cosine the blocks are 2 - 2 cos: the same as squared Euclidean distances of L2-normalised features.
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    normalised = [compute_distance_matrix(a, b) for a, b in ((qn, gn), (qn, qn), (gn, gn))]
    cosine = rerank_features(qf * 5, gf * 5, "cosine", 6, 2, 0.4)
    np.testing.assert_allclose(cosine, re_ranking(*normalised, 6, 2, 0.4), atol=1e-5)


def test_re_ranking_improves_retrieval_of_clustered_features(benchmark_common) -> None:
    split = benchmark_common.market_like_split(
        seed=0, num_ids=40, num_queries=80, num_gallery=400, num_distractors=60, num_junk=10
    )
    qf = benchmark_common.identity_features(split.q_pids, 128, 0.6, 0, 1)
    gf = benchmark_common.identity_features(split.g_pids, 128, 0.6, 0, 2)
    labels = (split.q_pids, split.g_pids, split.q_camids, split.g_camids)
    before = evaluate(compute_distance_matrix(qf, gf), *labels)
    after = evaluate(rerank_features(qf, gf), *labels)
    assert after["mAP"] > before["mAP"] + 0.1  # 0.52 -> 0.80 with this seed


def test_bad_inputs_are_refused() -> None:
    _, _, q_g, q_q, g_g = _blocks(5, 20, 4, seed=4)
    with pytest.raises(ReidkitError, match="q_q_dist \\(Q, Q\\)"):
        re_ranking(q_g, q_q[:4], g_g)
    broken = g_g.copy()
    broken[3, 7] = np.inf
    with pytest.raises(ReidkitError, match="gallery item 7 contain NaN or infinity"):
        re_ranking(q_g, q_q, broken)
    with pytest.raises(ReidkitError, match="query 0 are all 0"):
        re_ranking(np.zeros_like(q_g), np.zeros_like(q_q), g_g)
    with pytest.raises(ReidkitError, match="k1 and k2 must be positive integers, got k1=0, k2=6"):
        re_ranking(q_g, q_q, g_g, k1=0)
    with pytest.raises(ReidkitError, match="lambda_value must lie in \\[0, 1\\]"):
        re_ranking(q_g, q_q, g_g, lambda_value=1.5)


@pytest.mark.parametrize(("k1", "k2"), [(20, 6), (5, 1), (3, 4)])
def test_jaccard_of_one_set_is_re_ranking_without_the_original_distances(k1: int, k2: int) -> None:
    features = np.random.default_rng(k1).standard_normal((90, 8)).astype(np.float32)
    joint = compute_distance_matrix(features, features)
    joint = np.minimum(joint, joint.T)  # exactly symmetric, as re_ranking's blocks assume (float32 products are not)
    nq = 25
    expected = re_ranking(joint[:nq, nq:], joint[:nq, :nq], joint[nq:, nq:], k1, k2, 0.0)
    jaccard = jaccard_distance(joint, k1, k2)
    np.testing.assert_array_equal(jaccard[:nq, nq:], expected)
    np.testing.assert_allclose(jaccard, jaccard.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(jaccard), 0, atol=1e-6)


def test_sparse_jaccard_from_the_exact_neighbour_graph_keeps_the_close_pairs() -> None:
    features = np.random.default_rng(7).standard_normal((120, 8)).astype(np.float32)
    dist = compute_distance_matrix(features, features)
    dense = jaccard_distance(dist, 10, 3)
    ranked = np.argsort(dist, axis=1, kind="stable")[:, :11]
    found = sparse_jaccard_distance(ranked, lambda r, c: dist[r, c], np.square(dist).max(axis=1), 10, 3, cutoff=0.9)
    rows, cols = np.nonzero(dense <= 0.9)
    np.testing.assert_allclose(found.toarray()[rows, cols], dense[rows, cols], atol=1e-6)
    assert found.nnz == rows.size  # the diagonal's zeros are stored too


def test_jaccard_refuses_a_matrix_that_is_not_square() -> None:
    with pytest.raises(ReidkitError, match="square"):
        jaccard_distance(np.zeros((3, 4)))


def test_sparse_jaccard_keeps_each_rows_nearest_and_stays_symmetric() -> None:
    features = np.random.default_rng(8).standard_normal((150, 8)).astype(np.float32)
    dist = compute_distance_matrix(features, features)
    ranked = np.argsort(dist, axis=1, kind="stable")[:, :11]
    args = (ranked, lambda r, c: dist[r, c], np.square(dist).max(axis=1), 10, 3)
    full = sparse_jaccard_distance(*args)
    kept = sparse_jaccard_distance(*args, per_row=4)
    stored = np.zeros((150, 150), dtype=bool)
    coo = kept.tocoo()
    stored[coo.row, coo.col] = True
    assert np.array_equal(stored, stored.T) and stored.diagonal().all()
    dense_full, dense_kept = full.toarray(), kept.toarray()
    for row in range(150):
        lo, hi = full.indptr[row], full.indptr[row + 1]
        nearest = full.indices[lo:hi][np.argsort(full.data[lo:hi], kind="stable")[:4]]
        assert stored[row, nearest].all()
        np.testing.assert_allclose(dense_kept[row, nearest], dense_full[row, nearest], atol=1e-6)
    assert kept.nnz < full.nnz / 2
