"""Market-1501 metrics: hand-worked toys, and the fast evaluator against the classic per-query loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reidkit.errors import ReidkitError
from reidkit.evaluation import evaluate

# Gallery of the toy: pid / camera of g0..g4.
TOY_G_PIDS = np.array([1, 2, 1, -1, 1])
TOY_G_CAMS = np.array([0, 1, 1, 0, 2])
TOY_Q_PIDS = np.array([1, 2, 3])
TOY_Q_CAMS = np.array([0, 0, 1])
TOY_DIST = np.array(
    [
        [0.1, 0.2, 0.3, 0.05, 0.4],
        [0.5, 0.1, 0.2, 0.3, 0.4],
        [0.1, 0.2, 0.3, 0.4, 0.5],
    ],
    dtype=np.float32,
)


def test_toy_by_hand() -> None:
    # q0 (pid 1, cam 0): by distance g3 (junk, dropped), g0 (pid 1 from cam 0, dropped), g1 (no), g2 (yes), g4 (yes).
    #   Valid ranking: g1, g2, g4 -> matches at ranks 1 and 2: AP = (1/2 + 2/3) / 2 = 7/12, INP = 2/3.
    # q1 (pid 2, cam 0): g1 comes first and matches: AP = 1, INP = 1.
    # q2 (pid 3): no gallery image of pid 3 -> skipped.
    result = evaluate(TOY_DIST, TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS, max_rank=3)
    assert result["num_query"] == 3
    assert result["num_gallery"] == 5
    assert result["num_valid_query"] == 2
    assert result["rank1"] == pytest.approx(0.5)
    assert result["rank5"] == pytest.approx(1.0)
    assert result["rank10"] == pytest.approx(1.0)
    assert result["cmc"] == pytest.approx([0.5, 1.0, 1.0])
    assert result["mAP"] == pytest.approx((7 / 12 + 1) / 2)
    assert result["mINP"] == pytest.approx((2 / 3 + 1) / 2)


def test_equal_distances_rank_in_gallery_order() -> None:
    g_pids, g_cams = np.array([5, 1, 5]), np.array([1, 1, 1])
    # The match g1 ties with g0 and g2: a stable sort puts g0 before it and g2 after it, so its rank is 1.
    tied = evaluate(np.array([[1.0, 1.0, 1.0]]), np.array([1]), g_pids, np.array([0]), g_cams)
    assert tied["rank1"] == 0.0
    assert tied["mAP"] == pytest.approx(1 / 2)
    # With the match first in gallery order it ranks first.
    first = evaluate(np.array([[1.0, 1.0, 1.0]]), np.array([1]), np.array([1, 5, 5]), np.array([0]), g_cams)
    assert first["rank1"] == 1.0
    # A hidden (same pid, same camera) image tied with the match does not push it down.
    hidden = evaluate(np.array([[1.0, 1.0]]), np.array([1]), np.array([1, 1]), np.array([0]), np.array([0, 1]))
    assert hidden["rank1"] == 1.0


def test_torch_and_float64_inputs_give_the_same_result() -> None:
    expected = evaluate(TOY_DIST, TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS)
    as_torch = evaluate(
        torch.from_numpy(TOY_DIST), torch.tensor(TOY_Q_PIDS), torch.tensor(TOY_G_PIDS), TOY_Q_CAMS, TOY_G_CAMS
    )
    as_double = evaluate(TOY_DIST.astype(np.float64), TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS)
    assert as_torch == expected
    assert as_double == expected


def test_nan_distance_is_refused() -> None:
    broken = TOY_DIST.copy()
    broken[1, 4] = np.nan
    with pytest.raises(ReidkitError, match="row 1 contains NaN"):
        evaluate(broken, TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS)
    hidden = TOY_DIST.copy()
    hidden[0, 3] = np.nan  # a junk column: still a broken matrix
    with pytest.raises(ReidkitError, match="row 0 contains NaN"):
        evaluate(hidden, TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS)


def test_no_valid_query_is_refused() -> None:
    with pytest.raises(ReidkitError, match="no query has a true match"):
        evaluate(TOY_DIST[2:], TOY_Q_PIDS[2:], TOY_G_PIDS, TOY_Q_CAMS[2:], TOY_G_CAMS)


def test_label_length_mismatch_is_refused() -> None:
    with pytest.raises(ReidkitError, match="g_camids has 4 entries"):
        evaluate(TOY_DIST, TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS[:4])
    with pytest.raises(ReidkitError, match="2-D"):
        evaluate(TOY_DIST[0], TOY_Q_PIDS, TOY_G_PIDS, TOY_Q_CAMS, TOY_G_CAMS)


def _assert_matches_reference(reference_evaluate, dist, q_pids, g_pids, q_cams, g_cams, max_rank: int) -> None:
    try:
        expected = reference_evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
    except ValueError:
        with pytest.raises(ReidkitError):
            evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
        return
    result = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert abs(result[key] - expected[key]) < 1e-9, key
    assert result["num_valid_query"] == expected["num_valid_query"]
    assert len(result["cmc"]) == max_rank
    assert np.max(np.abs(np.asarray(result["cmc"]) - expected["cmc"])) < 1e-9


@st.composite
def ranking_problems(draw):
    num_query = draw(st.integers(1, 8))
    num_gallery = draw(st.integers(1, 30))
    values = st.sampled_from([0.0, 1.0, 2.0, 3.0, np.inf])  # few values: many ties
    dist = np.array(draw(st.lists(values, min_size=num_query * num_gallery, max_size=num_query * num_gallery)))
    pid = st.integers(-1, 3)  # -1 junk, 0 distractor
    camera = st.integers(0, 2)
    q_pids = np.array(draw(st.lists(pid, min_size=num_query, max_size=num_query)))
    g_pids = np.array(draw(st.lists(pid, min_size=num_gallery, max_size=num_gallery)))
    q_cams = np.array(draw(st.lists(camera, min_size=num_query, max_size=num_query)))
    g_cams = np.array(draw(st.lists(camera, min_size=num_gallery, max_size=num_gallery)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    max_rank = draw(st.integers(1, 12))
    return dist.reshape(num_query, num_gallery).astype(dtype), q_pids, g_pids, q_cams, g_cams, max_rank


@settings(max_examples=300, deadline=None)
@given(ranking_problems())
def test_matches_the_reference_loop_with_ties_junk_and_unmatched_queries(benchmark_common, problem) -> None:
    _assert_matches_reference(benchmark_common.reference_evaluate, *problem)


def test_matches_the_reference_loop_across_many_row_blocks(benchmark_common) -> None:
    rng = np.random.default_rng(3)
    num_query, num_gallery = 700, 900
    dist = rng.integers(0, 50, (num_query, num_gallery)).astype(np.float32)
    q_pids, g_pids = rng.integers(-1, 60, num_query), rng.integers(-1, 60, num_gallery)
    q_cams, g_cams = rng.integers(0, 6, num_query), rng.integers(0, 6, num_gallery)
    _assert_matches_reference(benchmark_common.reference_evaluate, dist, q_pids, g_pids, q_cams, g_cams, 50)
