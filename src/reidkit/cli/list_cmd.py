"""``reidkit list [KIND]``: what can be chosen by name, read from the registries themselves.

Each kind's registry lives with its stage and is imported only when that kind is listed, so listing detectors or
recipes does not load torch.
"""

from __future__ import annotations

import importlib
from enum import Enum
from typing import Annotated

import typer

from reidkit.registry import Registry


class Kind(str, Enum):
    models = "models"
    backbones = "backbones"
    datasets = "datasets"
    detectors = "detectors"
    backends = "backends"
    indexes = "indexes"
    clustering = "clustering"
    recipes = "recipes"


def register(app: typer.Typer) -> None:
    """Add ``list`` to the ``reidkit`` app."""
    app.command("list")(list_choices)


def list_choices(
    kind: Annotated[Kind | None, typer.Argument(help="what to list (default: everything)")] = None,
) -> None:
    """List what can be chosen by name: models, backbones, datasets, detectors, embedding backends, vector indexes,
    clustering methods and recipes."""
    for chosen in [kind] if kind is not None else list(Kind):
        rows = _recipes() if chosen is Kind.recipes else _registered(*_REGISTRIES[chosen])
        typer.echo(f"{chosen.value}:")
        width = max(len(name) for name, _ in rows)
        for name, summary in rows:
            typer.echo(f"  {name:<{width}}  {summary}")
        if chosen is Kind.models:
            _echo_shipped_models()


# Where each kind's registry lives: (module, name), imported only when listed.
_REGISTRIES = {
    Kind.models: ("reidkit.models.build", "MODELS"),
    Kind.backbones: ("reidkit.models.backbones", "BACKBONES"),
    Kind.datasets: ("reidkit.data.loading", "DATASETS"),
    Kind.detectors: ("reidkit.video.detectors", "DETECTORS"),
    Kind.backends: ("reidkit.inference.backends", "EMBEDDING_BACKENDS"),
    Kind.indexes: ("reidkit.store.vector_index", "VECTOR_INDEXES"),
    Kind.clustering: ("reidkit.clustering.methods", "CLUSTER_METHODS"),
}


def _registered(module: str, name: str) -> list[tuple[str, str]]:
    registry: Registry[object] = getattr(importlib.import_module(module), name)
    return [(entry.name, entry.summary) for entry in registry.entries()]


def _echo_shipped_models() -> None:
    """The trained models inside the package, usable as ``--checkpoint NAME``; the default is marked."""
    from reidkit.models.zoo import DEFAULT_ATTRIBUTE_MODEL, DEFAULT_MODEL, SHIPPED_MODELS

    typer.echo("trained models (shipped with reidkit, --checkpoint NAME; * = the default of every command that embeds,"
               " a = of `reidkit attributes`):")
    width = max(len(name) for name in SHIPPED_MODELS.names())
    for entry in SHIPPED_MODELS.entries():
        mark = "*" if entry.name == DEFAULT_MODEL else "a" if entry.name == DEFAULT_ATTRIBUTE_MODEL else " "
        typer.echo(f" {mark}{entry.name:<{width}}  {entry.summary}")


def _recipes() -> list[tuple[str, str]]:
    from reidkit.recipes import recipe_names, recipe_summary

    return [(name, recipe_summary(name)) for name in recipe_names()]
