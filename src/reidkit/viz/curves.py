"""Training curves from a run's per-epoch history (the rows of ``metrics.csv``), drawn headless with Agg.

Training draws them into its run folder when it completes (``curves.png``); ``reidkit viz curves RUN_DIR`` draws
them again from the files a run leaves, also for a run that is still going or was stopped.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reidkit.errors import ReidkitError
from reidkit.viz.figure_files import plt, save_figure

METRICS_CSV, LAST_CHECKPOINT = "metrics.csv", "last.pt"


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
    else:
        eval_ax.text(0.5, 0.5, "no evaluated epoch yet", ha="center", va="center", transform=eval_ax.transAxes)
    lr_ax.plot(epochs, [row.get("lr") for row in history], color="tab:purple", marker=".")
    lr_ax.set(title="learning rate / throughput", xlabel="epoch", ylabel="learning rate")
    lr_ax.set_yscale("log")
    rate_ax = lr_ax.twinx()
    rate_ax.plot(epochs, [row.get("images_per_s") for row in history], color="tab:gray", linestyle="--")
    rate_ax.set_ylabel("images / s (dashed)")
    fig.suptitle(title)
    return save_figure(fig, path)


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a run's ``metrics.csv``: numbers as numbers, empty cells (epochs not evaluated) None."""
    try:
        with open(path, newline="") as handle:
            rows = [
                {key: _number(value) for key, value in row.items()} for row in csv.DictReader(handle)
            ]
    except (OSError, ValueError, csv.Error) as exc:
        raise ReidkitError(f"{path}: cannot read the run's metrics log ({exc})") from exc
    if not rows or any(not isinstance(row.get("epoch"), int | float) for row in rows):
        raise ReidkitError(f"{path}: no epoch rows; is this the metrics.csv of a reidkit training run?")
    return rows


def plot_run_curves(run_dir: Path, path: Path) -> Path:
    """The curves of the run in ``run_dir`` from its ``metrics.csv``, with the finer loss log of its ``last.pt``
    (means over windows of steps) when that checkpoint is there."""
    run_dir = Path(run_dir)
    csv_path = run_dir / METRICS_CSV
    if not csv_path.is_file():
        raise ReidkitError(f"{run_dir}: no {METRICS_CSV}; pass the output folder of a reidkit train run")
    step_log: list[dict[str, float]] = []
    if (run_dir / LAST_CHECKPOINT).is_file():
        from reidkit.models.model_file import load_checkpoint  # torch: only when there is a checkpoint to read

        step_log = list(load_checkpoint(run_dir / LAST_CHECKPOINT).get("step_log", []))
    title = "/".join(run_dir.resolve().parts[-2:])  # runs/demo/train -> demo/train
    return plot_training_curves(read_metrics_csv(csv_path), path, title=title, step_log=step_log)


def _number(cell: str | None) -> int | float | str | None:
    if cell is None or cell == "":
        return None
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell
