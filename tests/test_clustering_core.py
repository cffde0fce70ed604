"""The clustering core on features: methods, derived parameters, constraints, camera normalisation, scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from reidkit.clustering import (
    CLUSTER_METHODS,
    UNCLUSTERED,
    ClusterOptions,
    camera_normalise,
    cluster_features,
    score_clusters,
)
from reidkit.clustering.cluster import pca_whiten
from reidkit.clustering.metrics import cross_camera_rate, pairwise_scores
from reidkit.errors import ConfigError, ReidkitError


def _blobs(num_ids: int = 30, per_id: int = 8, dim: int = 32, noise: float = 0.5, seed: int = 0,
           camera_shift: float = 0.6):
    """Identity centres plus noise, half of each identity's items from camera 0 and half from camera 1, each camera
    shifting all its items alike (what per-camera normalisation is for)."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(num_ids), per_id)
    cams = np.tile(np.arange(per_id) % 2, num_ids)
    centres = rng.standard_normal((num_ids, dim))
    shift = rng.standard_normal((2, dim)) * camera_shift
    features = centres[pids] + noise * rng.standard_normal((pids.size, dim)) + shift[cams]
    return features.astype(np.float32), pids, cams


@pytest.mark.parametrize("method", CLUSTER_METHODS.names())
def test_every_method_beats_the_trivial_clusterings(method: str) -> None:
    features, pids, cams = _blobs()
    result = cluster_features(features, ClusterOptions(method=method), cameras=cams.tolist())
    scores = score_clusters(result.labels, pids, cams)
    singletons = score_clusters(np.arange(pids.size), pids, cams)
    one_cluster = score_clusters(np.zeros(pids.size, dtype=np.int64), pids, cams)
    assert scores.f1 > max(singletons.f1, one_cluster.f1) + 0.5
    assert scores.nmi > singletons.nmi and scores.ari > 0.5
    assert result.labels.shape == pids.shape and result.confidence.dtype == np.float32
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    assert np.all(result.confidence[result.labels == UNCLUSTERED] == 0)
    assert result.params["method"] == method


def test_labels_are_numbered_by_first_appearance() -> None:
    features, _, _ = _blobs(num_ids=6)
    labels = cluster_features(features).labels
    seen = [int(x) for x in dict.fromkeys(labels.tolist()) if x != UNCLUSTERED]
    assert seen == list(range(len(seen)))


def test_one_item_or_one_track_alone() -> None:
    one = cluster_features(np.ones((1, 4), np.float32))
    assert one.labels.tolist() == [UNCLUSTERED] and one.confidence.tolist() == [0.0]
    track = cluster_features(np.ones((3, 4), np.float32), groups=["t", "t", "t"])
    assert track.labels.tolist() == [0, 0, 0] and track.num_clusters == 1


def test_eps_is_derived_from_the_data_and_recorded() -> None:
    features, _, _ = _blobs()
    derived = cluster_features(features, ClusterOptions(method="dbscan-jaccard", eps=None))
    assert derived.params["eps_source"].startswith("derived") and 0 < derived.params["eps"] < 1
    given = cluster_features(features, ClusterOptions(method="dbscan-jaccard", eps=0.5))
    assert given.params["eps"] == 0.5 and given.params["eps_source"] == "given"


def test_must_link_groups_end_in_one_cluster() -> None:
    features, pids, _ = _blobs(num_ids=10)
    # Tie items of different identities together: the constraint must win over the features.
    groups: list[object] = [None] * pids.size
    groups[0] = groups[20] = groups[40] = "track-a"
    groups[5] = groups[77] = "track-b"
    for method in CLUSTER_METHODS.names():
        labels = cluster_features(features, ClusterOptions(method=method), groups=groups).labels
        assert labels[0] == labels[20] == labels[40] != UNCLUSTERED
        assert labels[5] == labels[77] != UNCLUSTERED


def test_a_lone_track_is_a_person_even_when_no_one_else_is_near() -> None:
    features, _, _ = _blobs(num_ids=10)
    far = np.random.default_rng(9).standard_normal((2, features.shape[1])).astype(np.float32) * 10
    far[1] = far[0] * 1.01
    data = np.concatenate([features, far])
    groups = [None] * features.shape[0] + ["lone", "lone"]
    labels = cluster_features(data, groups=groups).labels
    assert labels[-1] == labels[-2] != UNCLUSTERED


def test_cannot_link_pairs_never_share_a_cluster() -> None:
    features, pids, _ = _blobs(num_ids=10, per_id=6)
    # Two items of each identity claimed to be in one frame: the clustering must split them.
    frames: list[object] = [None] * pids.size
    for pid in range(10):
        a, b = np.flatnonzero(pids == pid)[:2]
        frames[a] = frames[b] = f"frame-{pid}"
    for method in CLUSTER_METHODS.names():
        plain = cluster_features(features, ClusterOptions(method=method)).labels
        result = cluster_features(features, ClusterOptions(method=method), frames=frames)
        together_before = sum(plain[a] == plain[b] != UNCLUSTERED for a, b in _frame_pairs(frames))
        assert together_before > 0  # without the constraint these pairs do cluster together
        for a, b in _frame_pairs(frames):
            assert result.labels[a] == UNCLUSTERED or result.labels[a] != result.labels[b]
        assert result.params["cannot_link_pairs"] == 10


def _frame_pairs(frames: list[object]) -> list[tuple[int, int]]:
    by_frame: dict[object, list[int]] = {}
    for i, frame in enumerate(frames):
        if frame is not None:
            by_frame.setdefault(frame, []).append(i)
    return [(items[0], items[1]) for items in by_frame.values()]


def test_a_track_seen_twice_in_one_frame_is_refused() -> None:
    features, _, _ = _blobs(num_ids=3)
    groups = [None] * features.shape[0]
    frames = [None] * features.shape[0]
    groups[0] = groups[1] = "t"
    frames[0] = frames[1] = "f"
    with pytest.raises(ConfigError, match="items 0 and 1 are in one must-link group"):
        cluster_features(features, groups=groups, frames=frames)


def test_camera_normalisation_removes_each_cameras_mean() -> None:
    features, _, cams = _blobs()
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    normalised, applied = camera_normalise(unit, cams.tolist())
    assert applied and np.allclose(np.linalg.norm(normalised, axis=1), 1, atol=1e-5)
    gap_before = np.linalg.norm(unit[cams == 0].mean(0) - unit[cams == 1].mean(0))
    gap_after = np.linalg.norm(normalised[cams == 0].mean(0) - normalised[cams == 1].mean(0))
    assert gap_after < gap_before / 5
    same, applied = camera_normalise(unit, [0] * unit.shape[0])
    assert not applied and same is unit
    result = cluster_features(features, ClusterOptions(camera_norm=True), cameras=cams.tolist())
    assert result.params["camera_norm"] is True


def test_whitening_shrinks_what_every_item_varies_along() -> None:
    """Identities apart in a few directions, every item swinging widely along two others (pose, light): the raw
    neighbours follow the swing, the whitened ones the identities."""
    rng = np.random.default_rng(3)
    pids = np.repeat(np.arange(40), 10)
    centres = rng.standard_normal((40, 64)) * 0.35
    swing = rng.standard_normal((pids.size, 2)) @ rng.standard_normal((2, 64)) * 0.8
    features = (centres[pids] + swing + 0.1 * rng.standard_normal((pids.size, 64)) + 3.0).astype(np.float32)
    plain = cluster_features(features)
    whitened = cluster_features(features, ClusterOptions(whiten=32))
    assert plain.params["whitened_components"] == 0 and whitened.params["whitened_components"] == 32
    assert score_clusters(whitened.labels, pids).f1 > score_clusters(plain.labels, pids).f1 + 0.2

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    out, used = pca_whiten(unit, 32)
    assert used == 32 and out.shape == (pids.size, 32)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    # Each component's spread shrinks to about its square root: the largest-to-smallest ratio with it.
    before = np.linalg.svd(unit - unit.mean(0), compute_uv=False)[:32]
    after = np.linalg.svd(out - out.mean(0), compute_uv=False)
    assert after[0] / after[31] < (before[0] / before[31]) ** 0.75
    # Too few items to estimate 32 variances: left as they are, and the result says so.
    part = unit[:100]
    few, used = pca_whiten(part, 32)
    assert used == 0 and few is part
    with pytest.raises(ConfigError, match="whiten must be a positive number of components"):
        pca_whiten(unit, -1)


def test_camera_aware_neighbourhoods_join_a_persons_two_cameras() -> None:
    """A camera shift that puts every crop's ten nearest in its own camera: plain k-reciprocal sets never cross
    cameras, camera-aware ones (3 nearest of its own camera, 5 of the other) do."""
    features, pids, cams = _blobs(camera_shift=1.0)
    plain = cluster_features(features, cameras=cams.tolist())
    aware = cluster_features(features, ClusterOptions(camera_aware=True), cameras=cams.tolist())
    assert plain.params["camera_aware"] is False and "k1" in plain.params
    assert aware.params["camera_aware"] is True and (aware.params["k_intra"], aware.params["k_inter"]) == (3, 5)
    assert score_clusters(plain.labels, pids, cams).cross_camera < 0.2
    scores = score_clusters(aware.labels, pids, cams)
    assert scores.cross_camera > 0.8 and scores.f1 > 0.9
    # The k-NN graph ranks the same neighbours (exact FAISS); only the pairs it keeps per item differ.
    for method in ("agglomerative-jaccard", "dbscan-jaccard"):
        options = ClusterOptions(method=method, camera_aware=True, eps=0.5)
        dense = cluster_features(features, replace(options, graph="dense"), cameras=cams.tolist())
        knn = cluster_features(features, replace(options, graph="knn"), cameras=cams.tolist())
        assert score_clusters(knn.labels, dense.labels).ari > 0.95
    # Without cameras, or with one, there is nothing to be aware of: each item's k1 nearest, and the params say so.
    for cameras in (None, [0] * pids.size):
        alone = cluster_features(features, ClusterOptions(camera_aware=True), cameras=cameras)
        assert alone.params["camera_aware"] is False
        assert np.array_equal(alone.labels, cluster_features(features).labels)


def test_camera_aware_sets_with_a_camera_of_fewer_items_than_k() -> None:
    """A third camera holding one crop per person, and a fourth holding a single crop, whose own-camera list is
    padded (fewer items than k_intra + 1): the third camera's crops still join their people."""
    features, pids, cams = _blobs(num_ids=12, camera_shift=1.0)
    third = np.flatnonzero(np.arange(pids.size) % 8 == 7)  # one crop of each person moves to camera 2
    cams = cams.copy()
    cams[third] = 2
    cams[0] = 3  # a camera with a single crop
    result = cluster_features(features, ClusterOptions(camera_aware=True), cameras=cams.tolist())
    assert result.params["camera_aware"] is True
    assert score_clusters(result.labels, pids, cams).f1 > 0.85
    assert np.mean(result.labels[third] == result.labels[third - 2]) > 0.8  # its person's camera-1 crop


@pytest.mark.parametrize("method", ["dbscan-jaccard", "agglomerative-jaccard"])
def test_the_knn_graph_agrees_with_the_dense_one(method: str) -> None:
    features, pids, _ = _blobs(num_ids=20)
    dense = cluster_features(features, ClusterOptions(method=method, graph="dense", eps=0.5))
    knn = cluster_features(features, ClusterOptions(method=method, graph="knn", eps=0.5))
    assert score_clusters(knn.labels, dense.labels).ari > 0.95


def test_average_linkage_per_neighbourhood_equals_it_over_all_pairs() -> None:
    """A merge needs a pair within the cut, so clustering each component of the pairs within the cut alone (pairs
    whose k-reciprocal sets never meet at distance 1) must give what one linkage over the whole matrix gives."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    from reidkit.evaluation.rerank import jaccard_distance_features

    features, pids, _ = _blobs(num_ids=24, noise=0.8, seed=3)
    islands = np.random.default_rng(4).standard_normal((4, features.shape[1])).astype(np.float32) * 20
    features = features + islands[pids // 6]  # four far-apart groups of six people: four neighbourhoods
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    options = ClusterOptions(method="agglomerative-jaccard", linkage_cut=0.6)
    result = cluster_features(features, options)
    assert 1 < result.params["largest_component"] < pids.size  # several neighbourhoods: the split is exercised
    jaccard = jaccard_distance_features(unit, options.k1, options.k2).astype(np.float64)
    jaccard = np.clip(np.maximum(np.minimum(jaccard, jaccard.T), 0.0), 0.0, 1.0)
    np.fill_diagonal(jaccard, 0.0)
    whole = fcluster(linkage(squareform(jaccard, checks=False), "average"), 0.6, criterion="distance")
    sizes = np.bincount(whole)
    expected = np.where(sizes[whole] >= 2, whole, -1 - np.arange(pids.size))  # a singleton is a person of its own
    assert np.array_equal(result.labels == UNCLUSTERED, sizes[whole] < 2)
    assert score_clusters(result.labels, expected).ari == 1.0  # score_clusters counts each unclustered item alone


def test_pairwise_scores_and_cross_camera_rate_by_hand() -> None:
    pids = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([5, 5, 7, 7, 7, 8])
    precision, recall, f1 = pairwise_scores(labels, pids)
    # Pairs put together: (0,1) right; (2,3), (2,4), (3,4) of which (3,4) right -> 2 of 4; 4 true pairs, 2 found.
    assert (precision, recall) == (0.5, 0.5) and f1 == 0.5
    camids = np.array([0, 0, 1, 0, 1, 0])
    # Identity 0: camera 0 majority 5, camera 1 majority 7 -> miss; identity 1: 7 and 7 -> hit; 2 has one camera.
    assert cross_camera_rate(labels, pids, camids) == 0.5
    scores = score_clusters(np.array([-1, -1, 0, 0, 1, 1]), pids, camids)
    assert scores.unclustered == pytest.approx(1 / 3) and scores.num_clusters == 2


def test_bad_input_is_one_line() -> None:
    features, _, _ = _blobs(num_ids=3)
    with pytest.raises(ConfigError, match="unknown clustering method 'kmeans'"):
        cluster_features(features, ClusterOptions(method="kmeans"))
    with pytest.raises(ConfigError, match="nothing to cluster"):
        cluster_features(np.zeros((0, 8), np.float32))
    with pytest.raises(ConfigError, match="groups has 2 entries"):
        cluster_features(features, groups=["a", "b"])
    with pytest.raises(ReidkitError, match="NaN or infinity"):
        cluster_features(np.full((4, 3), np.nan, np.float32))
    with pytest.raises(ConfigError, match="linkage cut 1.5 must lie in"):
        cluster_features(features, ClusterOptions(method="agglomerative-jaccard", linkage_cut=1.5))
    with pytest.raises(ConfigError, match="graph 'huge'"):
        cluster_features(features, ClusterOptions(graph="huge"))
    with pytest.raises(ReidkitError, match="k_intra, k_inter and k2 must be positive integers, got k_intra=0"):
        cluster_features(features, ClusterOptions(camera_aware=True, k_intra=0), cameras=[0, 1] * 12)


def test_the_command_line_restates_the_cores_defaults() -> None:
    """``reidkit cluster`` restates the defaults (importing the core for --help would load SciPy)."""
    from reidkit.cli import cluster_cmd
    from reidkit.clustering import types

    assert cluster_cmd.DEFAULT_METHOD == types.DEFAULT_METHOD == ClusterOptions().method
    assert cluster_cmd.TRAIN_SPLIT_K1 == types.TRAIN_SPLIT_K1 == ClusterOptions().k1
    assert cluster_cmd.TRAIN_SPLIT_EPS == types.TRAIN_SPLIT_EPS == ClusterOptions().eps
    assert cluster_cmd.TRAIN_SPLIT_LINKAGE_CUT == types.TRAIN_SPLIT_LINKAGE_CUT == ClusterOptions().linkage_cut
    assert cluster_cmd.DEFAULT_WHITEN == types.DEFAULT_WHITEN == ClusterOptions().whiten
    assert cluster_cmd.HELD_OUT_K_INTRA == types.HELD_OUT_K_INTRA == ClusterOptions().k_intra
    assert cluster_cmd.HELD_OUT_K_INTER == types.HELD_OUT_K_INTER == ClusterOptions().k_inter
