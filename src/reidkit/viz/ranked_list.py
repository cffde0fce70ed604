"""Ranked-list figures: each query beside its top-k gallery matches, green border = same identity, red = not.

Gallery crops that the Market-1501 protocol ignores for a query (its identity seen by its own camera, junk) are
left out of that query's list, so the figure shows exactly the ranking that Rank-1 and mAP were computed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)

from reidkit.data import ImageRecord, read_image  # noqa: E402
from reidkit.evaluation.market_protocol import counted_gallery  # noqa: E402

RIGHT, WRONG, QUERY = "#1a9641", "#d7191c", "#404040"


def protocol_ranking(
    distmat: np.ndarray, row: int, query: ImageRecord, gallery: Sequence[ImageRecord], k: int
) -> list[int]:
    """Indices of the ``k`` nearest gallery crops that count for this query under the Market-1501 protocol."""
    counted = counted_gallery(
        query.pid, query.camid, np.array([g.pid for g in gallery]), np.array([g.camid for g in gallery])
    )
    order = np.argsort(distmat[row], kind="stable")
    return [int(g) for g in order[counted[order]][:k]]


def plot_ranked_lists(
    distmat: np.ndarray,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    query_rows: Sequence[int],
    path: Path,
    top_k: int = 10,
    title: str = "",
) -> Path:
    """One row per query in ``query_rows``: the query crop, then its ``top_k`` matches with rank and verdict."""
    fig, axes = plt.subplots(
        len(query_rows), top_k + 1, figsize=(1.1 * (top_k + 1), 2.2 * len(query_rows)), squeeze=False
    )
    for line, row in enumerate(query_rows):
        q = query[row]
        _show(axes[line][0], q, QUERY, f"query\nid {q.pid} cam {q.camid + 1}")
        ranked = protocol_ranking(distmat, row, q, gallery, top_k)
        for rank, g in enumerate(ranked, start=1):
            match = gallery[g].pid == q.pid
            _show(axes[line][rank], gallery[g], RIGHT if match else WRONG, f"#{rank}\nid {gallery[g].pid}")
        for empty in range(len(ranked) + 1, top_k + 1):
            axes[line][empty].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def _show(ax: plt.Axes, record: ImageRecord, colour: str, label: str) -> None:
    ax.imshow(np.asarray(read_image(record.path)))
    ax.set_title(label, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)
