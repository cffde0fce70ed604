"""Where a run's numbers go: each is recorded once, and the same record is handed to every writer.

The loop records each window of ``train.log_every`` steps once (a ``StepRecord``) and each epoch once (its history
row, which evaluation completes); ``LogMetrics`` (``hooks.py``) wraps the epoch in an ``EpochRecord`` and hands the
records to the run's writers: files (``metrics.csv``, ``summary.json``, ``curves.png``), TensorBoard, the console.
No writer computes a mean or reads the loop, so the numbers on the screen, in the CSV and in TensorBoard are the
same numbers, and a writer of one's own (``Trainer.build_writers``) sees exactly what the built-in ones see.

Both files are safe across ``--resume``: the CSV is rewritten whole from the history that the checkpoint carries, so
a run killed after logging an epoch but before checkpointing it cannot leave a duplicated or orphan row behind;
TensorBoard is reopened with ``purge_step`` for the same reason.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
SUMMARY, CURVES = "summary.json", "curves.png"


@dataclass(frozen=True)
class StepRecord:
    """The means over one logging window of steps, recorded by the loop at the step that closes the window.

    ``epoch`` is fractional (epoch 2 half done is 1.5): the x of the loss curves of runs too short for per-epoch
    points. ``lr`` is the epoch's learning rate; ``images_per_s`` the epoch's pace so far.
    """

    global_step: int
    epoch: float
    loss: float
    softmax_loss: float
    triplet_loss: float
    lr: float
    images_per_s: float

    def loss_point(self) -> dict[str, float]:
        """The window's entry in the run's step log (kept in ``last.pt``; what ``curves.png`` draws the losses from)."""
        return {"epoch": self.epoch, "loss": self.loss, "softmax_loss": self.softmax_loss,
                "triplet_loss": self.triplet_loss}


@dataclass(frozen=True)
class EpochRecord:
    """One epoch as every writer sees it, after its evaluation (if it had one).

    ``row`` is its history row (``history[-1]``: training means, pace, rate, and the evaluation's metrics);
    ``evaluation`` is the whole summary of the evaluation this epoch ran (query and gallery counts too), None if it
    ran none; ``epochs`` is the run's length as it stands (a time budget may have shortened it).
    """

    row: dict[str, Any]
    history: Sequence[dict[str, Any]]
    epochs: int
    evaluation: dict[str, Any] | None


@dataclass(frozen=True)
class RunRecord:
    """A completed run: every epoch's row, the last evaluation's summary and the step log."""

    history: Sequence[dict[str, Any]]
    metrics: dict[str, Any]
    step_log: Sequence[dict[str, float]]


class MetricsWriter:
    """Receives a run's records; a no-op at every point, subclasses write where they write."""

    def open(self, output_dir: Path, resume_step: int | None) -> None:
        """Before the first epoch of this call; ``resume_step`` is the global step a resumed run continues from."""

    def write_step(self, record: StepRecord) -> None:
        """At the end of each logging window."""

    def write_epoch(self, record: EpochRecord) -> None:
        """After each epoch and its evaluation."""

    def close(self, run: RunRecord | None) -> None:
        """Always, even when training raised; ``run`` is None unless the run completed."""


class RunFilesWriter(MetricsWriter):
    """``metrics.csv`` after every epoch; ``summary.json`` and ``curves.png`` (titled ``title``) when the run ends."""

    def __init__(self, title: str = "training") -> None:
        self.title = title
        self.output_dir: Path | None = None

    def open(self, output_dir: Path, resume_step: int | None) -> None:
        self.output_dir = output_dir

    def write_epoch(self, record: EpochRecord) -> None:
        if self.output_dir is not None:
            write_csv(self.output_dir / CSV_NAME, record.history)

    def close(self, run: RunRecord | None) -> None:
        if self.output_dir is None or run is None:
            return
        from reidkit.viz.curves import plot_training_curves  # matplotlib: imported only when a run draws

        summary = json.dumps({"epochs": len(run.history), "metrics": run.metrics}, indent=2)
        tmp = self.output_dir / f".{SUMMARY}.{os.getpid()}.tmp"
        tmp.write_text(summary)
        os.replace(tmp, self.output_dir / SUMMARY)
        plot_training_curves(list(run.history), self.output_dir / CURVES, title=self.title, step_log=list(run.step_log))


class TensorBoardWriter(MetricsWriter):
    """``train/loss``, ``train/lr``, ``train/images_per_s`` per logging window; ``epoch/<column>`` per epoch."""

    def __init__(self) -> None:
        self.writer: SummaryWriter | None = None  # while open

    def open(self, output_dir: Path, resume_step: int | None) -> None:
        # A resumed run purges the events past its checkpoint (those of the killed part's lost epoch).
        self.writer = SummaryWriter(str(output_dir / TENSORBOARD_DIR), purge_step=resume_step)

    def write_step(self, record: StepRecord) -> None:
        if self.writer is not None:
            for name in ("loss", "lr", "images_per_s"):
                self.writer.add_scalar(f"train/{name}", getattr(record, name), record.global_step)

    def write_epoch(self, record: EpochRecord) -> None:
        if self.writer is None:
            return
        row = record.row
        for name, value in row.items():
            if name != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(f"epoch/{name}", value, row["epoch"])
        self.writer.flush()

    def close(self, run: RunRecord | None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ConsoleWriter(MetricsWriter):
    """One line per epoch (losses, pace, rate, and the time the rest of the run should take at this process's
    pace so far, evaluations included) through ``echo``, and one more for an epoch that was evaluated."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.echo = echo
        self._started = time.monotonic()
        self._epochs_seen = 0

    def write_epoch(self, record: EpochRecord) -> None:
        row = record.row
        self._epochs_seen += 1
        left = record.epochs - int(row["epoch"])
        per_epoch = (time.monotonic() - self._started) / self._epochs_seen
        eta = f", about {format_duration(left * per_epoch)} left" if left > 0 else ""
        attribute = f", attribute {row['attribute_loss']:.4f}" if "attribute_loss" in row else ""
        self.echo(
            f"epoch {row['epoch']}/{record.epochs}: loss {row['loss']:.4f} (softmax {row['softmax_loss']:.4f}, "
            f"triplet {row['triplet_loss']:.4f}{attribute}), {row['images_per_s']:.0f} img/s, lr {row['lr']:.2e}{eta}"
        )
        summary = record.evaluation
        if summary is not None:
            self.echo(
                f"epoch {row['epoch']}: rank1 {summary['rank1']:.2%}  mAP {summary['mAP']:.2%}  "
                f"({summary['num_query']} queries, {summary['num_gallery']} gallery)"
            )


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min 30 s`` or ``45 s``: how long, at the precision a person waiting wants."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def write_csv(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """All rows, columns in first-seen order; epochs without evaluation leave the metric cells empty."""
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    os.replace(tmp, path)
