"""Training curves from a run's per-epoch history (the rows of ``metrics.csv``), drawn headless with Agg."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)


def plot_training_curves(
    history: Sequence[dict[str, Any]],
    path: Path,
    title: str = "training",
    step_log: Sequence[dict[str, float]] = (),
) -> Path:
    """Three panels: losses, test Rank-1 / mAP (epochs that were evaluated), and learning rate + throughput.

    Losses are drawn from ``step_log`` (means over windows of steps, x in fractional epochs) when given, so that a
    run of a few epochs still shows a curve; otherwise from the per-epoch means.
    """
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    loss_ax, eval_ax, lr_ax = axes
    loss_rows = step_log or history
    for key, label in (("loss", "total"), ("softmax_loss", "softmax"), ("triplet_loss", "triplet")):
        loss_ax.plot([row["epoch"] for row in loss_rows], [row.get(key) for row in loss_rows], label=label)
    loss_ax.set(title="training loss", xlabel="epoch")
    loss_ax.legend()
    for key, label in (("rank1", "Rank-1"), ("mAP", "mAP")):
        points = [(row["epoch"], 100 * row[key]) for row in history if row.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            eval_ax.plot(xs, ys, marker="o", label=label)
            eval_ax.annotate(f"{ys[-1]:.1f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 4))
    eval_ax.set(title="test split", xlabel="epoch", ylabel="%")
    if eval_ax.lines:
        eval_ax.legend()
    lr_ax.plot(epochs, [row.get("lr") for row in history], color="tab:purple", marker=".")
    lr_ax.set(title="learning rate / throughput", xlabel="epoch", ylabel="learning rate")
    lr_ax.set_yscale("log")
    rate_ax = lr_ax.twinx()
    rate_ax.plot(epochs, [row.get("images_per_s") for row in history], color="tab:gray", linestyle="--")
    rate_ax.set_ylabel("images / s (dashed)")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
