"""Clustering: who is who among person features, when the number of people is unknown (docs/clustering.md).

``cluster_features(features, options, cameras=, groups=, frames=) -> ClusterResult`` with the methods of
``CLUSTER_METHODS`` (average linkage and DBSCAN over k-reciprocal Jaccard distances, HDBSCAN), must-link groups
(one track) and cannot-link keys (one frame), per-camera normalisation, camera-aware k-reciprocal neighbourhoods,
PCA whitening, and a k-NN graph path for large N; ``score_clusters`` measures a clustering against known
identities. NumPy, SciPy, scikit-learn and FAISS; no torch.

Nothing is imported here until it is asked for (PEP 562): ``clustering.types`` alone loads no SciPy,
scikit-learn or FAISS.
"""

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    """The exported names, each imported from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
