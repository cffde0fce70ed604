"""What clustering takes and gives: the options (a method name and its few parameters) and the result per item.

The number of people is never an option: it comes out of the data. Parameters left at ``None`` are derived from
the features being clustered (``reidkit.clustering.methods``), and the result's ``params`` records the values used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The method ``cluster_features`` uses when none is named; docs/clustering.md gives the measurement behind it.
DEFAULT_METHOD = "agglomerative-jaccard"
UNCLUSTERED = -1
# The defaults are the best pairwise F1 on the shared CUHK03 benchmark's TRAINING identities (demo MGN-MobileNetV2,
# benchmarks/RESULTS.md "Clustering"): k1 10 for both Jaccard methods, DBSCAN's radius 0.4 and average linkage's
# cut 0.65 there. eps=None derives DBSCAN's radius from the features themselves instead (Otsu).
TRAIN_SPLIT_K1 = 10
TRAIN_SPLIT_EPS = 0.4
TRAIN_SPLIT_LINKAGE_CUT = 0.65
DEFAULT_WHITEN = 0
# Camera-aware neighbourhoods (``camera_aware``): the sizes with the best pairwise F1 on identities no model of the
# recipe saw (the shared benchmark's held-out training identities, best CPU recipe; benchmarks/RESULTS.md).
HELD_OUT_K_INTRA = 3
HELD_OUT_K_INTER = 5


@dataclass(frozen=True)
class ClusterOptions:
    """How to cluster.

    - ``method``: a name in ``CLUSTER_METHODS`` (``agglomerative-jaccard``, ``dbscan-jaccard`` or ``hdbscan``);
    - ``k1``, ``k2``: the k-reciprocal neighbourhood and query-expansion sizes of the Jaccard distance;
    - ``eps``: DBSCAN's radius in Jaccard distance (default: fitted on the benchmark's training split); ``None``
      derives it from the features' own distances;
    - ``min_samples``: DBSCAN's core-point count (items, must-link groups counting with their size);
    - ``linkage_cut``: the average-linkage distance at which ``agglomerative-jaccard`` stops merging (default:
      fitted on the benchmark's training split);
    - ``min_cluster_size``: HDBSCAN's smallest cluster;
    - ``camera_norm``: subtract each camera's mean feature before clustering (needs cameras);
    - ``camera_aware``: build the Jaccard methods' k-reciprocal sets from each item's ``k_intra`` nearest of its
      own camera and ``k_inter`` nearest of the other cameras instead of its k1 nearest overall (needs cameras,
      at least two of them; otherwise k1 is used);
    - ``whiten``: PCA-whiten the items among themselves to this many components before clustering (0: off;
      skipped when there are fewer than 4 items per component);
    - ``graph``: ``dense`` (N x N distances, exact), ``knn`` (FAISS k-NN graph and sparse Jaccard, for large N) or
      ``auto`` (dense up to ``DENSE_LIMIT`` items);
    - ``seed``: the random sample the k-NN graph estimates each item's farthest distance from.
    """

    method: str = DEFAULT_METHOD
    k1: int = TRAIN_SPLIT_K1
    k2: int = 6
    eps: float | None = TRAIN_SPLIT_EPS
    min_samples: int = 2
    linkage_cut: float = TRAIN_SPLIT_LINKAGE_CUT
    min_cluster_size: int = 2
    camera_norm: bool = False
    camera_aware: bool = False
    k_intra: int = HELD_OUT_K_INTRA
    k_inter: int = HELD_OUT_K_INTER
    whiten: int = DEFAULT_WHITEN
    graph: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class ClusterResult:
    """``labels[i]`` is item i's cluster (0, 1, ... in order of first appearance; ``UNCLUSTERED`` = -1 for an item
    that joins nobody) and ``confidence[i]`` in [0, 1] how firmly it belongs there (0 when unclustered);
    ``params`` holds the method and every parameter it ran with, derived ones included, as JSON-ready values."""

    labels: np.ndarray
    confidence: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def num_clusters(self) -> int:
        return int(np.unique(self.labels[self.labels != UNCLUSTERED]).size)

    @property
    def num_unclustered(self) -> int:
        return int(np.count_nonzero(self.labels == UNCLUSTERED))

    def members(self) -> dict[int, np.ndarray]:
        """Item indices of each cluster, by cluster label (unclustered items left out)."""
        return {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels) if c != UNCLUSTERED}


# The whole setting fitted on those held-out identities (average linkage over camera-aware sets, query expansion
# over 3, whitening to 512 components, cut 0.85): for crops of several cameras and a well-trained model
# (docs/clustering.md). The camera-blind ``ClusterOptions()`` stays the default: an album's folders are no cameras.
HELD_OUT_FIT = ClusterOptions(camera_aware=True, k2=3, whiten=512, linkage_cut=0.85)
