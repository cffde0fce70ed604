"""The training objective: a softmax loss on every ``ReidOutputs.logits`` head and a triplet loss on every
``ReidOutputs.metric_features`` head, weighted and combined.

Heads are summed by default, as in the MGN paper, whose objective is the plain sum of its 8 softmax and 3
triplet losses; ``head_reduction="mean"`` averages within each kind instead (what several MGN re-implementations
do), which keeps the loss scale independent of the number of heads when comparing models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from reidkit.errors import ConfigError
from reidkit.losses.attribute import AttributeLoss
from reidkit.losses.cross_entropy import CrossEntropyLoss
from reidkit.losses.triplet import BatchHardTripletLoss
from reidkit.models.types import ReidOutputs


@dataclass(frozen=True)
class LossWeights:
    softmax: float = 1.0
    triplet: float = 1.0
    attribute: float = 1.0

    def __post_init__(self) -> None:
        for name in ("softmax", "triplet", "attribute"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} weight must be >= 0, got {getattr(self, name)!r}")


@dataclass
class LossBreakdown:
    """``total`` is what to back-propagate; ``softmax`` and ``triplet`` are the unweighted combined terms.

    ``accuracy`` is the identity accuracy of the first logits head on this batch (detached), None for models
    without a classifier. ``attribute`` is the unweighted attribute loss, None unless the loss has attribute labels.
    All are tensors, so logging them costs no device synchronisation until read.
    """

    total: Tensor
    softmax: Tensor
    triplet: Tensor
    accuracy: Tensor | None
    attribute: Tensor | None = None


class ReidLoss(nn.Module):
    """``triplet_margin=None`` selects the soft margin (softplus); ``attributes`` adds the attribute term for models
    with an attribute head (their outputs carry ``attribute_logits``)."""

    def __init__(
        self,
        weights: LossWeights = LossWeights(),
        label_smoothing: float = 0.0,
        triplet_margin: float | None = 1.2,
        head_reduction: Literal["sum", "mean"] = "sum",
        attributes: AttributeLoss | None = None,
    ) -> None:
        super().__init__()
        if head_reduction not in ("sum", "mean"):
            raise ConfigError(f"loss head_reduction must be 'sum' or 'mean', got {head_reduction!r}")
        self.weights = weights
        self.head_reduction = head_reduction
        self.cross_entropy = CrossEntropyLoss(label_smoothing)
        self.triplet = BatchHardTripletLoss(triplet_margin)
        self.attributes = attributes

    def forward(self, outputs: ReidOutputs, labels: Tensor) -> LossBreakdown:
        softmax = self._combine([self.cross_entropy(logits, labels) for logits in outputs.logits], labels)
        triplet = self._combine([self.triplet(features, labels) for features in outputs.metric_features], labels)
        total = self.weights.softmax * softmax + self.weights.triplet * triplet
        attribute = None
        if self.attributes is not None:
            if outputs.attribute_logits is None:
                raise ConfigError("the loss has attribute labels but the model has no attribute head")
            attribute = self.attributes(outputs.attribute_logits, labels)
            total = total + self.weights.attribute * attribute
        accuracy = None
        if outputs.logits:
            accuracy = (outputs.logits[0].detach().argmax(dim=1) == labels).float().mean()
        return LossBreakdown(total=total, softmax=softmax, triplet=triplet, accuracy=accuracy, attribute=attribute)

    def _combine(self, losses: list[Tensor], labels: Tensor) -> Tensor:
        if not losses:
            return torch.zeros((), device=labels.device)
        combined = torch.stack(losses).sum()
        return combined / len(losses) if self.head_reduction == "mean" else combined
