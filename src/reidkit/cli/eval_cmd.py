"""The ``eval-features`` command (placeholder registration while the evaluation stage is written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the ``reidkit`` app."""
    del app
