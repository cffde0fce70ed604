"""The typed surface every ReID model shares, so trainers and checkpoints never need to know which model they hold."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model's architecture (not its weights) with ``build_model``.

    ``kwargs`` holds the model's effective constructor options, defaults included, so a checkpoint keeps meaning
    the same architecture even if a default changes later. The pretrained-weights source is deliberately absent:
    a checkpoint's own weights replace it.
    """

    name: str
    num_classes: int
    backbone: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReidOutputs:
    """What a model produces in ``train()`` mode, grouped by the loss that consumes it.

    Every tensor in ``logits`` (B, num_classes) feeds a softmax cross-entropy; every tensor in ``metric_features``
    (B, D) feeds a batch-hard triplet loss. The model decides the wiring, so the loss needs no model-specific
    indices or names.
    """

    logits: list[Tensor]
    metric_features: list[Tensor]


class ReidModel(nn.Module, ABC):
    """Base of every reidkit model: ``train()`` forward gives ``ReidOutputs``, ``eval()`` forward the test feature.

    Subclasses list their ImageNet-initialised modules in ``backbone_modules`` so a trainer can give them a
    smaller learning rate than the freshly initialised heads without knowing the model's layout.
    """

    def __init__(self, spec: ModelSpec, feature_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.feature_dim = feature_dim

    @abstractmethod
    def backbone_modules(self) -> list[nn.Module]:
        """The modules that hold ImageNet-initialised (backbone) weights."""

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """Trainable parameters split into (backbone, head); together they cover every trainable parameter once."""
        backbone_ids = {id(p) for module in self.backbone_modules() for p in module.parameters()}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) in backbone_ids]
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids]
        return backbone, head
