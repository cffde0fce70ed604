"""Activation-map figures, as Fig. 5 of the MGN paper: each crop, then one map per branch laid over it.

The maps are computed in ``reidkit.inference.activation_maps`` (which says why: the branch's feature-map energy);
this module only draws them. Each map is scaled to its own maximum, so a panel shows where that branch responds
most, not how strongly compared with another branch (``per_stripe``: each stripe to its own maximum). The part
branches get dashed lines where their stripes meet: each stripe is max-pooled into a feature of its own, so the
paper expects a part branch to respond inside every stripe rather than only where the global branch does.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reidkit.viz.figure_files import plt, save_figure

if TYPE_CHECKING:
    from reidkit.inference.activation_maps import ActivationMaps

_CELL_W, _CELL_H = 1.3, 2.6
OVERLAY_ALPHA = 0.5


def plot_activation_maps(
    maps: Sequence[ActivationMaps], path: Path, labels: Sequence[str] = (), title: str = "", per_stripe: bool = False
) -> Path:
    """One line per crop: the crop, then each branch's map over it (``labels``: a caption per crop).

    ``per_stripe`` scales each stripe of a part branch to its own peak instead of the whole map's (``scaled``).
    """
    columns = 1 + max(len(m.branches) for m in maps)
    lines = textwrap.wrap(title, width=int(_CELL_W * columns * 13)) if title else []
    fig, axes = plt.subplots(
        len(maps), columns, figsize=(_CELL_W * columns, _CELL_H * len(maps) + 0.2 * len(lines)),
        squeeze=False, constrained_layout=True,
    )
    for line, item in enumerate(maps):
        height, width = item.image.shape[:2]
        axes[line][0].imshow(item.image)
        label = labels[line] if line < len(labels) else "input"
        axes[line][0].set_title(label if len(label) <= 20 else label[:9] + "…" + label[-10:], fontsize=7)
        for column, branch in enumerate(item.branches, start=1):
            ax = axes[line][column]
            ax.imshow(item.image)
            ax.imshow(
                scaled(branch.energy, branch.stripes if per_stripe else 1), cmap="jet", alpha=OVERLAY_ALPHA,
                extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="bilinear", vmin=0, vmax=1,
            )
            for stripe in range(1, branch.stripes):
                ax.axhline(stripe * height / branch.stripes - 0.5, color="white", linestyle="--", linewidth=1)
            ax.set_title(branch.name, fontsize=8)
        for column in range(len(item.branches) + 1, columns):
            axes[line][column].axis("off")
        for ax in axes[line]:
            ax.set_xticks([])
            ax.set_yticks([])
    if lines:
        fig.suptitle("\n".join(lines), fontsize=8)
    return save_figure(fig, path)


def scaled(energy: np.ndarray, stripes: int = 1) -> np.ndarray:
    """``energy`` divided by its peak in each of ``stripes`` horizontal stripes (1: the whole map's peak).

    Each stripe of a part branch is max-pooled into a feature of its own, so how strongly one stripe responds
    compared with another does not reach the feature; per stripe, the picture shows where inside each stripe its
    feature comes from. A row belongs to the stripe its centre falls in, as the dashed lines are drawn.
    """
    rows = np.minimum((np.arange(energy.shape[0]) + 0.5) * stripes // energy.shape[0], stripes - 1).astype(int)
    out = np.zeros_like(energy, dtype=np.float64)
    for stripe in range(stripes):
        part = energy[rows == stripe]
        peak = float(part.max()) if part.size else 0.0
        out[rows == stripe] = part / peak if peak > 0 else part
    return out


def height_shares(energy: np.ndarray, parts: int = 3) -> list[float]:
    """The share of a map's energy in each of ``parts`` horizontal bands, top first (rows split as evenly as they
    go): how a branch spreads its response from head to feet, in numbers the command prints beside the figure."""
    bands = [float(band.sum()) for band in np.array_split(energy, parts, axis=0)]
    total = sum(bands)
    return [band / total if total > 0 else 0.0 for band in bands]
