"""ImageNet backbones, each cut into a shared trunk and a per-branch tail (see ``Backbone``)."""

from __future__ import annotations

from pathlib import Path

from reidkit.errors import ModelError
from reidkit.models.backbones.mobilenetv2 import imagenet_weights_file, mobilenetv2_backbone
from reidkit.models.backbones.resnet import resnet50_backbone
from reidkit.models.backbones.split import Backbone

BACKBONES = ("resnet50", "mobilenetv2")


def build_backbone(name: str, pretrained: str | Path | None = None) -> Backbone:
    """``pretrained``: None (random init), ``"imagenet"``, or a path to a state dict file."""
    match name:
        case "resnet50":
            return resnet50_backbone(pretrained)
        case "mobilenetv2":
            return mobilenetv2_backbone(pretrained)
        case _:
            raise ModelError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "Backbone", "build_backbone", "imagenet_weights_file"]
