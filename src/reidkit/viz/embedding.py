"""A 2-D t-SNE picture of a features file, one colour per identity: do a person's crops land together?

t-SNE (scikit-learn) costs roughly quadratic time in the number of points, so above ``MAX_POINTS`` crops the file
is subsampled by identity with a seed: identities are drawn in random order and kept whole, with all their crops,
until the next one would pass the limit. Whole identities keep the clusters that the picture is there to show
(a random crop sample would leave two or three crops per person). Features are first reduced to 50 dimensions with
PCA, the usual preparation for t-SNE, which keeps a 2,000-point picture to seconds. Crops without an identity
(pid -1: unlabelled or junk) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidkit.errors import ReidkitError
from reidkit.evaluation.feature_files import FeatureSet
from reidkit.viz.figure_files import plt, save_figure

MAX_POINTS = 2000
PCA_DIM = 50
_MARKERS = "os^Dv"


@dataclass(frozen=True)
class EmbeddingFigure:
    path: Path
    points: int
    identities: int
    total: int


def sample_identities(pids: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Row indices of whole identities drawn at random (``seed``) while they fit in ``max_points``, ascending."""
    labelled = np.flatnonzero(pids != -1)
    if len(labelled) <= max_points:
        return labelled
    keep: list[np.ndarray] = []
    room = max_points
    for pid in np.random.default_rng(seed).permutation(np.unique(pids[labelled])):
        rows = labelled[pids[labelled] == pid]
        if len(rows) <= room:
            keep.append(rows)
            room -= len(rows)
    return np.sort(np.concatenate(keep)) if keep else np.empty(0, dtype=np.int64)


def plot_embedding(
    features: FeatureSet, path: Path, max_points: int = MAX_POINTS, seed: int = 0, title: str = ""
) -> EmbeddingFigure:
    """t-SNE of ``features`` (subsampled by identity above ``max_points``), coloured by identity; saved to ``path``."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rows = sample_identities(features.pids, max_points, seed)
    if len(rows) < 5:
        raise ReidkitError(
            f"features file: {len(rows)} crops with an identity (pid != -1) after sampling; t-SNE needs at least 5"
        )
    points = features.features[rows].astype(np.float64)
    if points.shape[1] > PCA_DIM and len(rows) > PCA_DIM:
        points = PCA(n_components=PCA_DIM, random_state=seed).fit_transform(points)
    perplexity = min(30.0, (len(rows) - 1) / 3)
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    pids = features.pids[rows]
    identities = np.unique(pids)
    fig, ax = plt.subplots(figsize=(7, 7), constrained_layout=True)
    for i, pid in enumerate(identities):  # 20 colours x 5 markers: 100 identities before a style repeats
        here = pids == pid
        # tab20 pairs a dark and a light shade of each hue: the 10 dark ones first, so few identities never share one
        colour = plt.get_cmap("tab20")(2 * (i % 10) + (i // 10) % 2)
        ax.scatter(xy[here, 0], xy[here, 1], color=colour, marker=_MARKERS[(i // 20) % len(_MARKERS)], s=24,
                   linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        title or f"t-SNE of {len(rows)} crops of {len(identities)} identities (of {len(features)} crops), "
        "one colour and marker per identity",
        fontsize=9,
    )
    return EmbeddingFigure(save_figure(fig, path), len(rows), len(identities), len(features))
