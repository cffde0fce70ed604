"""ImageNet backbones, each cut into a shared trunk and a per-branch tail (see ``Backbone``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reidkit.errors import ModelError
from reidkit.models.backbones.mobilenetv2 import imagenet_weights_file, mobilenetv2_backbone
from reidkit.models.backbones.resnet import resnet50_backbone
from reidkit.models.backbones.split import Backbone
from reidkit.registry import Registry

BACKBONES: Registry[Callable[[str | Path | None], Backbone]] = Registry("backbone", ModelError)
BACKBONES.add("resnet50", resnet50_backbone, "ResNet-50 shared up to res_conv4_1 as in MGN; ImageNet via torchvision")
BACKBONES.add("mobilenetv2", mobilenetv2_backbone, "MobileNetV2 shared to stride 16; ImageNet weights from ../shared")


def build_backbone(name: str, pretrained: str | Path | None = None) -> Backbone:
    """``pretrained``: None (random init), ``"imagenet"``, or a path to a state dict file."""
    return BACKBONES.get(name)(pretrained)


__all__ = ["BACKBONES", "Backbone", "build_backbone", "imagenet_weights_file"]
