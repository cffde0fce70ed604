"""ReID models: MGN and its baselines on ResNet-50 or MobileNetV2 backbones, built by ``build_model``, and the
model file that carries one between training, inference and the person-search store (``model_file``)."""

from __future__ import annotations

from reidkit.models.backbones import BACKBONES, Backbone, build_backbone
from reidkit.models.bnneck import BNNeck
from reidkit.models.build import MODELS, build_model
from reidkit.models.ide import IDE
from reidkit.models.mgn import MGN
from reidkit.models.model_file import (
    ModelCard,
    build_from_checkpoint,
    load_checkpoint,
    load_model,
    model_id,
    save_checkpoint,
    save_weights_only,
)
from reidkit.models.pcb import PCB
from reidkit.models.trinet import TriNet
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs

__all__ = [
    "BACKBONES",
    "MODELS",
    "BNNeck",
    "Backbone",
    "IDE",
    "MGN",
    "ModelCard",
    "ModelSpec",
    "PCB",
    "ReidModel",
    "ReidOutputs",
    "TriNet",
    "build_backbone",
    "build_from_checkpoint",
    "build_model",
    "load_checkpoint",
    "load_model",
    "model_id",
    "save_checkpoint",
    "save_weights_only",
]
