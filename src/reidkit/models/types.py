"""The typed surface every ReID model shares, so trainers and checkpoints never need to know which model they hold."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from reidkit.attribute_schema import ATTRIBUTE_SCHEMAS, AttributeSchema
from reidkit.errors import ModelError


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
    indices or names. ``attribute_logits`` (B, sum of the schema's group sizes) is there for a model with an
    attribute head: one softmax per group of ``reidkit.attribute_schema``.
    """

    logits: list[Tensor]
    metric_features: list[Tensor]
    attribute_logits: Tensor | None = None


class ReidModel(nn.Module, ABC):
    """Base of every reidkit model: ``train()`` forward gives ``ReidOutputs``, ``eval()`` forward the test feature.

    Subclasses list their ImageNet-initialised modules in ``backbone_modules`` so a trainer can give them a
    smaller learning rate than the freshly initialised heads without knowing the model's layout.
    """

    def __init__(self, spec: ModelSpec, feature_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.feature_dim = feature_dim
        # A plain tuple, not a registered submodule: the frozen layers are already in the model's state dict.
        self._frozen: tuple[nn.Module, ...] = ()

    @abstractmethod
    def backbone_modules(self) -> list[nn.Module]:
        """The modules that hold ImageNet-initialised (backbone) weights."""

    @property
    def attribute_schema(self) -> AttributeSchema | None:
        """The attributes this model predicts (its ``attributes`` option), None for a model without the head."""
        name = self.spec.kwargs.get("attributes")
        return ATTRIBUTE_SCHEMAS.get(name) if name else None

    def embed_with_attributes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The test feature and the attribute logits of one eval-mode forward (for ingest: one pass gives both)."""
        raise ModelError(f"model {self.spec.name!r} has no attribute head (built without the attributes option)")

    def branch_maps(self, x: Tensor) -> dict[str, Tensor]:
        """The last feature map of each branch, (B, C, h, w), by branch name: what the test feature is pooled from.

        For activation-map figures (``reidkit viz attention``), which must show the maps the model really pools
        without repeating its forward. Single-branch models run ``Backbone.full`` (first in ``backbone_modules``)
        and have one branch, ``"backbone"``; MGN overrides this with its global and part branches.
        """
        return {"backbone": self.backbone_modules()[0](x)}

    def branch_stripes(self) -> dict[str, int]:
        """How many horizontal stripes each branch of ``branch_maps`` is pooled into (1: one global pooling)."""
        return {"backbone": 1}

    def trunk(self) -> nn.Sequential:
        """The backbone layers before any branching, input first (``Backbone.shared``): what ``freeze_trunk`` counts.

        Single-branch models hold the backbone as ``Backbone.full``'s ``Sequential(shared, branch)``, first in
        ``backbone_modules``; MGN, whose branches fork after the trunk, overrides this.
        """
        body = self.backbone_modules()[0]
        assert isinstance(body, nn.Sequential) and isinstance(body[0], nn.Sequential)
        return body[0]

    def freeze_trunk(self, layers: int) -> None:
        """Keep the first ``layers`` trunk layers as they are: no gradient, and BatchNorm statistics fixed.

        For short fine-tuning on a CPU: early layers compute generic edges and textures that ImageNet already
        taught, and with no gradient flowing into them backward stops before them, so every step is cheaper.
        ``train()`` leaves them in eval mode, so their BatchNorm keeps the ImageNet running statistics.
        """
        trunk = self.trunk()
        if isinstance(layers, bool) or not isinstance(layers, int) or not 0 <= layers <= len(trunk):
            raise ModelError(
                f"model {self.spec.name!r}: cannot freeze {layers!r} trunk layers (model.freeze_layers); the "
                f"{self.spec.backbone} trunk has {len(trunk)} (0 freezes none)"
            )
        self._frozen = tuple(trunk[:layers])
        for module in self._frozen:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ReidModel:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """Trainable parameters split into (backbone, head); together they cover every trainable parameter once."""
        backbone_ids = {id(p) for module in self.backbone_modules() for p in module.parameters()}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) in backbone_ids]
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone_ids]
        return backbone, head
