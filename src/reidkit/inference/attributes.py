"""Attributes in the forward pass that embeds: a model with an attribute head run as one network whose output row
is the test feature followed by every attribute group's probabilities.

One output keeps every embedding backend as it is (PyTorch, OpenVINO and ONNX Runtime each run one network with one
output, cached by id), and the extractor splits the row: the feature columns are exactly what the model gives
alone, so a store's vectors do not change with attributes on, and the attributes cost one small matrix product
and a softmax per group.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reidkit.attribute_schema import AttributeSchema, group_slices
from reidkit.errors import ModelError
from reidkit.models.types import ReidModel

# What a cached compiled network with attributes adds to its model id: another graph (two outputs in one).
CACHE_SUFFIX = "+attributes"


class FeatureAndAttributes(nn.Module):
    """``model``'s eval forward, plus its attribute probabilities (softmax per group) concatenated after it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        schema = model.attribute_schema if isinstance(model, ReidModel) else None
        if schema is None:
            name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
            raise ModelError(f"model {name!r} has no attribute head; train it with data.attributes to get one")
        self.model = model
        self.schema: AttributeSchema = schema
        self.feature_dim = int(model.feature_dim)  # type: ignore[arg-type]
        self.slices = group_slices(schema.sizes)

    def forward(self, x: Tensor) -> Tensor:
        feature, logits = self.model.embed_with_attributes(x)  # type: ignore[operator]
        probabilities = [logits[:, block].float().softmax(dim=1) for block in self.slices]
        return torch.cat([feature.float(), *probabilities], dim=1)
