"""Ranked lists, as in Fig. 4 of the MGN paper: each query on the left, its top-k gallery matches to the right,
green border = same person, red = another, the distance under each match.

Gallery crops that the Market-1501 protocol ignores for a query (its identity seen by its own camera, junk) are
left out of that query's list, so the figure shows exactly the ranking that Rank-1 and mAP were computed on. The
queries are drawn at random with a seed (``random_queries``), never picked by hand, so a figure cannot show only
the cases where the model does well.

The panels sit at positions fixed in inches (not left to ``tight_layout``), so the drawing function can return
each panel's pixel box in the PNG: a test reads the border colours back from the image itself.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidkit.data import ImageRecord, read_image
from reidkit.evaluation.market_protocol import counted_gallery
from reidkit.viz.figure_files import DPI, plt, save_figure

RIGHT, WRONG, QUERY = "#1a9641", "#d7191c", "#404040"
BORDER_PX = 5
# Layout in inches: panel size, gaps, the text above (rank, id) and below (distance) each panel, margins.
_IMG_W, _IMG_H = 0.8, 1.6
_GAP, _QUERY_GAP = 0.12, 0.45
_ABOVE, _BELOW, _ROW_GAP = 0.32, 0.22, 0.12
_MARGIN, _TITLE_LINE = 0.15, 0.22


@dataclass(frozen=True)
class Panel:
    """One crop of the figure. ``rank`` 0 is the query; ``box`` = (left, top, right, bottom) in PNG pixels."""

    query_row: int
    rank: int
    record: ImageRecord
    colour: str
    same_person: bool | None
    distance: float | None
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class RankedListFigure:
    path: Path
    panels: list[Panel]


def random_queries(num_query: int, count: int, seed: int) -> list[int]:
    """Query rows for a figure drawn at random with a fixed seed (never hand-picked), in ascending order."""
    count = min(count, num_query)
    return sorted(np.random.default_rng(seed).choice(num_query, size=count, replace=False).tolist())


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
) -> RankedListFigure:
    """One line per query in ``query_rows``: the query crop, then its ``top_k`` counted matches; saved to ``path``
    (PNG or SVG by suffix). Returns every panel with its colour, verdict and pixel box."""
    width = 2 * _MARGIN + _IMG_W + _QUERY_GAP + top_k * _IMG_W + (top_k - 1) * _GAP
    lines = textwrap.wrap(title, width=int(width * 11)) if title else []
    top = _MARGIN + len(lines) * _TITLE_LINE
    row_height = _ABOVE + _IMG_H + _BELOW + _ROW_GAP
    height = top + len(query_rows) * row_height + _MARGIN
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    if lines:
        fig.text(0.5, 1 - _MARGIN / height, "\n".join(lines), ha="center", va="top", fontsize=10)
    panels: list[Panel] = []

    def draw(
        line: int, row: int, rank: int, record: ImageRecord, colour: str, label: str, distance: float | None
    ) -> Panel:
        x = _MARGIN + (0 if rank == 0 else _IMG_W + _QUERY_GAP + (rank - 1) * (_IMG_W + _GAP))
        y = top + line * row_height + _ABOVE  # inches from the top
        ax = fig.add_axes((x / width, 1 - (y + _IMG_H) / height, _IMG_W / width, _IMG_H / height))
        ax.imshow(np.asarray(read_image(record.path)), aspect="auto", interpolation="bilinear")
        ax.set_title(label, fontsize=7, pad=3)
        ax.set_xlabel("" if distance is None else f"{distance:.4g}", fontsize=7, labelpad=2)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(BORDER_PX * 72 / DPI)
        box = (x * DPI, y * DPI, (x + _IMG_W) * DPI, (y + _IMG_H) * DPI)
        return Panel(row, rank, record, colour, None if rank == 0 else colour == RIGHT, distance, box)

    for line, row in enumerate(query_rows):
        q = query[row]
        panels.append(draw(line, row, 0, q, QUERY, f"query\nid {q.pid} cam {q.camid + 1}", None))
        for rank, g in enumerate(protocol_ranking(distmat, row, q, gallery, top_k), start=1):
            match = gallery[g]
            colour = RIGHT if match.pid == q.pid else WRONG
            panels.append(draw(line, row, rank, match, colour, f"#{rank}\nid {match.pid}", float(distmat[row, g])))
    return RankedListFigure(save_figure(fig, path), panels)
