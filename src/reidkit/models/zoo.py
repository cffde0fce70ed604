"""Trained models shipped inside the package: usable by name wherever a model file is asked for, offline.

A user who installs reidkit and runs ``reidkit ingest`` should get a network trained for re-identification, not
ImageNet features, without a checkout, a download or a training run. So the best model that the project's own
CPU recipe trains is package data (``models/trained/NAME.pt``, an ``inference_copy``: float16, no identity
classifiers) with its card beside it (``NAME.md``: data, recipe, commit, metrics, licence), and ``--checkpoint
NAME`` (or no ``--checkpoint`` at all: ``DEFAULT_MODEL``) finds it. A store made with it records the name, not
the install path, so the store keeps working after reidkit is reinstalled elsewhere.

One more shipped model = its two files in ``trained/`` and one ``SHIPPED_MODELS.add`` line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from reidkit.errors import ModelError
from reidkit.registry import Registry

SHIPPED_MODELS: Registry[str] = Registry("trained model", ModelError)
SHIPPED_MODELS.add(
    "market1501_mgn_mobilenetv2",
    "market1501_mgn_mobilenetv2",
    "MGN-MobileNetV2, 128x64, trained on Market-1501 on 2 CPU cores (recipe market1501_mgn_mobilenetv2_cpu)",
)
SHIPPED_MODELS.add(
    "market1501_attributes_mobilenetv2",
    "market1501_attributes_mobilenetv2",
    "pedestrian attributes only (not for Re-ID): MGN-MobileNetV2, 128x64, Market-1501 labels, 2 CPU cores",
)
DEFAULT_MODEL = "market1501_mgn_mobilenetv2"
# `reidkit attributes` reads attributes with the network trained for them alone: it beats the published APR mean
# accuracy, which the default model's joint head (kept for ingest: one pass, and better Re-ID) misses by 0.26.
DEFAULT_ATTRIBUTE_MODEL = "market1501_attributes_mobilenetv2"


def shipped_model_file(name: str) -> Path:
    """The ``.pt`` of the shipped model ``name`` (a ``ModelError`` listing the choices for an unknown name)."""
    stem = SHIPPED_MODELS.get(name)
    path = Path(str(resources.files(__package__) / "trained" / f"{stem}.pt"))
    if not path.is_file():
        raise ModelError(f"shipped model {name!r}: {path.name} is missing from the installed package; reinstall reidkit")
    return path


def is_shipped_model(name_or_path: str | Path) -> bool:
    """True for a shipped model's name (a plain name wins only when no file of that name exists here)."""
    text = str(name_or_path)
    return text in SHIPPED_MODELS and not Path(text).is_file()


def model_file(name_or_path: str | Path) -> Path:
    """The file to read for a ``--checkpoint`` value: a shipped model's name, or a path as given."""
    return shipped_model_file(str(name_or_path)) if is_shipped_model(name_or_path) else Path(name_or_path)
