"""Clustering: who is who among person features, when the number of people is unknown (docs/clustering.md).

``cluster_features(features, options, cameras=, groups=, frames=) -> ClusterResult`` with the methods of
``CLUSTER_METHODS`` (average linkage and DBSCAN over k-reciprocal Jaccard distances, HDBSCAN), must-link groups
(one track) and cannot-link keys (one frame), per-camera normalisation, camera-aware k-reciprocal neighbourhoods,
PCA whitening, and a k-NN graph path for large N; ``score_clusters`` measures a clustering against known
identities. NumPy, SciPy, scikit-learn and FAISS; no torch.

Nothing is imported here until it is asked for (PEP 562): ``clustering.types`` alone loads no SciPy,
scikit-learn or FAISS.
"""

from reidkit.lazy_exports import lazy_getattr

# Each exported name and the module that defines it.
_EXPORTS = {
    "camera_normalise": "cluster",
    "cluster_features": "cluster",
    "CLUSTER_METHODS": "methods",
    "derive_eps": "methods",
    "ClusterScores": "metrics",
    "score_clusters": "metrics",
    "DEFAULT_METHOD": "types",
    "HELD_OUT_FIT": "types",
    "TRAIN_SPLIT_EPS": "types",
    "UNCLUSTERED": "types",
    "ClusterOptions": "types",
    "ClusterResult": "types",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
