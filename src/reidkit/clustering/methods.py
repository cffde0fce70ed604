"""The clustering methods, by name (``CLUSTER_METHODS``), each node features in, node labels and confidences out.

- ``dbscan-jaccard``: DBSCAN over k-reciprocal Jaccard distances (the re-ranking distance among one set of items,
  ``evaluation.rerank``), as unsupervised ReID (SpCL, Cluster Contrast) clusters. ``eps`` left at ``None`` is
  derived from the data: the Jaccard distances from each item to its k1 nearest others are bimodal (the same
  person's other crops share most of their k-reciprocal neighbours, anyone else few), and Otsu's threshold of
  the pooled distances finds the valley between the two modes.
- ``agglomerative-jaccard``: average-linkage agglomerative clustering (SciPy) over the same Jaccard distances:
  clusters merge while the mean distance between all their members stays within ``linkage_cut``. DBSCAN joins two
  groups through a single close pair, so one look-alike chains two people (and, at a wider radius, dozens); the
  mean over all pairs does not. A merge needs a mean within the cut, hence at least one pair within it, so every
  cluster lies inside one connected component of the graph of pairs within the cut: each component is clustered
  on its own (over all its pairs' distances, those never met at 1), exactly as one linkage over the N x N matrix
  would, and memory grows with the largest component, not with N^2.
- ``hdbscan``: scikit-learn's HDBSCAN on L2-normalised Euclidean features: no radius at all, clusters of varying
  density; ``min_cluster_size`` is the one parameter.

Both Jaccard methods read one graph (``jaccard_neighbours``), built over each node's k1 nearest or, with
``camera_aware``, over its nearest of its own camera and of the others apart; ``dbscan_on_graph`` and
``average_linkage_on_graph`` cluster a built graph, so a sweep of radii builds it once.

No parameter is ever fitted to identities: the number of people and the radius come from the features themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from reidkit.clustering.constraints import Nodes
from reidkit.clustering.graph import camera_jaccard_graph, jaccard_graph, resolve_graph, squared_distances_to
from reidkit.clustering.types import UNCLUSTERED, ClusterOptions
from reidkit.errors import ConfigError
from reidkit.registry import Registry


@dataclass(frozen=True)
class NodeClusters:
    """A method's answer for the nodes: labels (-1 = noise), confidences in [0, 1], and the parameters it used."""

    labels: np.ndarray
    confidence: np.ndarray
    params: dict[str, Any]


ClusterMethod = Callable[[Nodes, ClusterOptions], NodeClusters]
CLUSTER_METHODS: Registry[ClusterMethod] = Registry("clustering method", ConfigError)

# Otsu's threshold over this many histogram bins of Jaccard distances in [0, 1].
_BINS = 200
# When no two items' k-reciprocal sets meet there is nothing to derive from, and nothing to cluster either.
_NO_NEIGHBOURS_EPS = 0.5
# Average linkage holds a dense distance matrix of one component: 20,000 items are 1.6 GB.
_MAX_COMPONENT = 20_000


@dataclass(frozen=True)
class JaccardGraph:
    """The nodes' k-reciprocal Jaccard distances below 1 (cannot-link pairs removed) and the neighbourhood
    parameters they were built with: what both Jaccard methods cluster, built once for any radius."""

    distances: sparse.csr_array
    params: dict[str, Any]


def jaccard_neighbours(nodes: Nodes, options: ClusterOptions) -> JaccardGraph:
    """The Jaccard graph of ``nodes``: camera-aware when asked for and the nodes span two cameras or more (each
    node's k_intra nearest of its own camera and k_inter of the others), else over each node's k1 nearest."""
    graph_kind = resolve_graph(options.graph, len(nodes))
    cameras = nodes.cameras
    if options.camera_aware and cameras is not None and np.unique(cameras).size > 1:
        found = camera_jaccard_graph(nodes.features, cameras, options.k_intra, options.k_inter, options.k2,
                                     graph_kind, options.seed)
        params = {"camera_aware": True, "k_intra": options.k_intra, "k_inter": options.k_inter}
    else:
        found = jaccard_graph(nodes.features, options.k1, options.k2, graph_kind, options.seed)
        params = {"camera_aware": False, "k1": options.k1}
    return JaccardGraph(_without_pairs(found, nodes.conflicts), {**params, "k2": options.k2, "graph": graph_kind})


def dbscan_on_graph(built: JaccardGraph, nodes: Nodes, options: ClusterOptions) -> NodeClusters:
    """DBSCAN over a built Jaccard graph at ``options.eps`` (``None``: derived from the graph, over each item's
    k1 nearest, or k_intra + k_inter with camera-aware sets)."""
    from sklearn.cluster import DBSCAN

    graph = built.distances
    k = options.k_intra + options.k_inter if built.params["camera_aware"] else options.k1
    eps = float(options.eps) if options.eps is not None else derive_eps(graph, k)
    if not 0.0 < eps < 1.0:
        raise ConfigError(f"eps {eps} must lie in (0, 1): Jaccard distances do")
    model = DBSCAN(eps=eps, min_samples=options.min_samples, metric="precomputed")
    labels = model.fit_predict(graph, sample_weight=nodes.sizes.astype(np.float64))
    confidence = _dbscan_confidence(graph, labels, model.core_sample_indices_, eps)
    params = {
        **built.params,
        "eps": round(eps, 4),
        "eps_source": "given" if options.eps is not None else "derived (Otsu valley of nearest Jaccard distances)",
        "min_samples": options.min_samples,
    }
    return NodeClusters(labels.astype(np.int64), confidence, params)


def average_linkage_on_graph(built: JaccardGraph, nodes: Nodes, options: ClusterOptions) -> NodeClusters:
    """Average linkage over a built Jaccard graph, cut at ``options.linkage_cut``."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import squareform

    cut = float(options.linkage_cut)
    if not 0.0 < cut < 1.0:
        raise ConfigError(f"linkage cut {cut} must lie in (0, 1): Jaccard distances do")
    jaccard = built.distances
    # As similarities (1 - d) a missing entry reads as "never met" (d = 1); either item's view of a pair counts.
    similarity = sparse.csr_array((1.0 - jaccard.data, jaccard.indices, jaccard.indptr), shape=jaccard.shape)
    similarity = similarity.maximum(similarity.T).tocsr()
    similarity.eliminate_zeros()
    # Two groups merge only when their mean distance is within the cut, so some pair of them is: the components of
    # the pairs within the cut (a hair wider, for rounding) each hold whole clusters, and are clustered alone.
    close = similarity.copy()
    close.data = (close.data > 1.0 - cut - 1e-6).astype(np.float32)
    close.eliminate_zeros()
    count, component = connected_components(close, directed=False)
    labels = np.full(len(nodes), UNCLUSTERED, dtype=np.int64)
    confidence = np.zeros(len(nodes), dtype=np.float32)
    members = np.argsort(component, kind="stable")
    bounds = np.searchsorted(component[members], np.arange(count + 1))
    largest = int(np.diff(bounds).max(initial=0))
    if largest > _MAX_COMPONENT:
        raise ConfigError(
            f"{largest} items are linked within the linkage cut {cut}, too many for average linkage (at most "
            f"{_MAX_COMPONENT}); use a smaller --linkage-cut or --method dbscan-jaccard"
        )
    next_label = 0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if stop - start < 2:
            continue
        idx = members[start:stop]
        distance = 1.0 - similarity[idx][:, idx].toarray()
        np.fill_diagonal(distance, 0.0)
        np.clip(distance, 0.0, 1.0, out=distance)
        flat = fcluster(linkage(squareform(distance, checks=False), method="average"), cut, criterion="distance")
        sizes = np.bincount(flat)
        for cluster in np.flatnonzero(sizes >= 2):
            inside = flat == cluster
            labels[idx[inside]] = next_label
            next_label += 1
            block = distance[np.ix_(inside, inside)]
            # 1 - the mean distance to the cluster's other members: how well each one sits in its cluster
            confidence[idx[inside]] = 1.0 - block.sum(axis=1) / (int(inside.sum()) - 1)
    params = {**built.params, "linkage": "average", "linkage_cut": round(cut, 4), "largest_component": largest}
    return NodeClusters(labels, confidence, params)


def _dbscan_jaccard(nodes: Nodes, options: ClusterOptions) -> NodeClusters:
    return dbscan_on_graph(jaccard_neighbours(nodes, options), nodes, options)


def _agglomerative_jaccard(nodes: Nodes, options: ClusterOptions) -> NodeClusters:
    return average_linkage_on_graph(jaccard_neighbours(nodes, options), nodes, options)


def _hdbscan(nodes: Nodes, options: ClusterOptions) -> NodeClusters:
    from sklearn.cluster import HDBSCAN

    graph_kind = resolve_graph(options.graph, len(nodes))
    size = max(2, min(options.min_cluster_size, len(nodes)))
    model = HDBSCAN(min_cluster_size=size, metric="precomputed" if graph_kind == "dense" else "euclidean", copy=False)
    if graph_kind == "dense":
        data = np.sqrt(squared_distances_to(nodes.features, nodes.features)).astype(np.float64)
        data = np.minimum(data, data.T)  # float32 products are not exactly symmetric; HDBSCAN checks
        np.fill_diagonal(data, 0.0)
        # Cannot-link pairs as far apart as unit vectors can be; the split afterwards catches what links through others.
        data[nodes.conflicts[:, 0], nodes.conflicts[:, 1]] = data[nodes.conflicts[:, 1], nodes.conflicts[:, 0]] = 2.0
    else:
        data = nodes.features
    labels = model.fit_predict(data)
    params = {"min_cluster_size": size, "metric": "euclidean (L2-normalised)", "graph": graph_kind}
    return NodeClusters(labels.astype(np.int64), model.probabilities_.astype(np.float32), params)


CLUSTER_METHODS.add("dbscan-jaccard", _dbscan_jaccard, "DBSCAN over k-reciprocal Jaccard distances")
CLUSTER_METHODS.add("agglomerative-jaccard", _agglomerative_jaccard,
                    "average linkage over k-reciprocal Jaccard distances (the default)")
CLUSTER_METHODS.add("hdbscan", _hdbscan, "scikit-learn HDBSCAN on L2-normalised Euclidean features")


def derive_eps(graph: sparse.csr_array, k: int) -> float:
    """DBSCAN's radius from the data: Otsu's threshold of the pooled Jaccard distances from each item to its ``k``
    nearest other items (those stored in ``graph``; fewer where fewer meet it)."""
    nearest: list[np.ndarray] = []
    for row in range(graph.shape[0]):
        lo, hi = graph.indptr[row], graph.indptr[row + 1]
        others = graph.data[lo:hi][graph.indices[lo:hi] != row]
        nearest.append(others if others.size <= k else np.partition(others, k - 1)[:k])
    pooled = np.concatenate(nearest) if nearest else np.zeros(0)
    if pooled.size == 0:
        return _NO_NEIGHBOURS_EPS
    return otsu_threshold(pooled)


def otsu_threshold(values: np.ndarray) -> float:
    """The cut in [0, 1] that maximises the between-class variance of ``values`` (Otsu 1979), at a bin edge."""
    counts, edges = np.histogram(np.clip(values, 0.0, 1.0), bins=_BINS, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)[:-1]
    weight_high = counts.sum() - weight_low
    mass_low = np.cumsum(counts * centres)[:-1]
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (np.sum(counts * centres) - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


def _without_pairs(graph: sparse.csr_array, pairs: np.ndarray) -> sparse.csr_array:
    """``graph`` with the entries of ``pairs`` (both orders) dropped: those items are no neighbours at any radius."""
    if pairs.size == 0:
        return graph
    n = graph.shape[0]
    coo = graph.tocoo()
    banned = np.concatenate([pairs[:, 0] * n + pairs[:, 1], pairs[:, 1] * n + pairs[:, 0]])
    keep = ~np.isin(coo.row.astype(np.int64) * n + coo.col, banned)
    return sparse.csr_array((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=graph.shape)


def _dbscan_confidence(graph: sparse.csr_array, labels: np.ndarray, cores: np.ndarray, eps: float) -> np.ndarray:
    """1 for a core item; for a border item 1 - d / eps, d its distance to the nearest core item of its cluster
    (how deep inside the radius it sits); 0 for noise."""
    confidence = np.zeros(labels.size, dtype=np.float32)
    is_core = np.zeros(labels.size, dtype=bool)
    is_core[cores] = True
    confidence[is_core] = 1.0
    for row in np.flatnonzero(~is_core & (labels != UNCLUSTERED)):
        lo, hi = graph.indptr[row], graph.indptr[row + 1]
        cols, values = graph.indices[lo:hi], graph.data[lo:hi]
        near = values[is_core[cols] & (labels[cols] == labels[row])]
        confidence[row] = max(0.0, 1.0 - float(near.min()) / eps) if near.size else 0.0
    return confidence
