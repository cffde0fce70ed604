"""Run logs: ``metrics.csv`` (one row per epoch) and TensorBoard scalars, both safe across ``--resume``.

The CSV is rewritten whole from the run history that the checkpoint carries, so a run killed after logging an
epoch but before checkpointing it cannot leave a duplicated or orphan row behind; TensorBoard is reopened with
``purge_step`` for the same reason.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

CSV_NAME = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


class MetricsLog:
    """Writes step scalars (TensorBoard) and epoch rows (CSV + TensorBoard) under ``output_dir``."""

    def __init__(self, output_dir: Path, tensorboard: bool, resume_step: int | None = None) -> None:
        self.output_dir = output_dir
        self.writer = (
            SummaryWriter(str(output_dir / TENSORBOARD_DIR), purge_step=resume_step) if tensorboard else None
        )

    def step(self, global_step: int, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(f"train/{name}", value, global_step)

    def epoch(self, history: list[dict[str, Any]]) -> None:
        """Record the newest epoch of ``history`` and rewrite the CSV from all of it."""
        row = history[-1]
        if self.writer is not None:
            for name, value in row.items():
                if name != "epoch" and isinstance(value, int | float):
                    self.writer.add_scalar(f"epoch/{name}", value, row["epoch"])
            self.writer.flush()
        write_csv(self.output_dir / CSV_NAME, history)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_csv(path: Path, history: list[dict[str, Any]]) -> None:
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
