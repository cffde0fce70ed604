"""Clustering: who is who among person features, when the number of people is unknown (docs/clustering.md).

``cluster_features(features, options, cameras=, groups=, frames=) -> ClusterResult`` with the methods of
``CLUSTER_METHODS`` (average linkage and DBSCAN over k-reciprocal Jaccard distances, HDBSCAN), must-link groups
(one track) and cannot-link keys (one frame), per-camera normalisation, camera-aware k-reciprocal neighbourhoods,
PCA whitening, and a k-NN graph path for large N; ``score_clusters`` measures a clustering against known
identities. NumPy, SciPy, scikit-learn and FAISS; no torch.
"""

from reidkit.clustering.cluster import camera_normalise, cluster_features
from reidkit.clustering.methods import CLUSTER_METHODS, derive_eps
from reidkit.clustering.metrics import ClusterScores, score_clusters
from reidkit.clustering.types import (
    DEFAULT_METHOD,
    HELD_OUT_FIT,
    TRAIN_SPLIT_EPS,
    UNCLUSTERED,
    ClusterOptions,
    ClusterResult,
)

__all__ = [
    "CLUSTER_METHODS",
    "DEFAULT_METHOD",
    "HELD_OUT_FIT",
    "TRAIN_SPLIT_EPS",
    "UNCLUSTERED",
    "ClusterOptions",
    "ClusterResult",
    "ClusterScores",
    "camera_normalise",
    "cluster_features",
    "derive_eps",
    "score_clusters",
]
