"""Heads shared by several models, with one initialisation convention for all of them.

Classifiers start from N(0, 0.001) and zero bias, as in PCB and "Bag of Tricks": near-uniform initial softmax
keeps the early cross-entropy gradients from swamping the pretrained backbone. Reductions use He init because a
ReLU follows them.
"""

from __future__ import annotations

from torch import nn

from reidkit.attribute_schema import ATTRIBUTE_SCHEMAS, AttributeSchema
from reidkit.errors import ModelError


def reduction(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU on a pooled (B, C, 1, 1) map: MGN's and PCB's per-feature dimension reduction."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    bn = nn.BatchNorm2d(out_channels)
    return nn.Sequential(conv, bn, nn.ReLU(inplace=True))


class IdentityClassifier(nn.Linear):
    """A linear layer over the training identities. Its own type marks it as training-only: no test feature reads
    it, so a model file for inference (``model_file.inference_copy``) leaves its weights out."""


def classifier(in_features: int, num_classes: int, bias: bool = True) -> IdentityClassifier:
    """The identity classifier that one softmax loss reads."""
    linear = IdentityClassifier(in_features, num_classes, bias=bias)
    nn.init.normal_(linear.weight, std=0.001)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class AttributeHead(nn.Linear):
    """One linear layer from the test feature to every attribute group's logits, block after block (APR, Lin et al.
    2019, puts its attribute classifiers on the pooled Re-ID feature the same way). Reading the test feature itself
    means ingest gets a crop's attributes from the forward pass that embeds it, for one small matrix product more.
    Unlike the identity classifiers it is kept in inference model files: it is what ``reidkit attributes`` runs."""

    def __init__(self, in_features: int, schema: AttributeSchema) -> None:
        super().__init__(in_features, sum(schema.sizes))
        self.schema = schema
        nn.init.normal_(self.weight, std=0.001)
        nn.init.zeros_(self.bias)


def attribute_head(model: str, in_features: int, schema_name: object) -> AttributeHead | None:
    """The head for the model option ``attributes`` (a schema name, or None for a model without attributes)."""
    if schema_name is None:
        return None
    if not isinstance(schema_name, str):
        raise ModelError(f"model {model!r}: option attributes must be a schema name, got {schema_name!r}")
    if schema_name not in ATTRIBUTE_SCHEMAS:
        raise ModelError(
            f"model {model!r}: option attributes {schema_name!r} is not a schema; choose one of "
            f"{', '.join(ATTRIBUTE_SCHEMAS.names())}"
        )
    return AttributeHead(in_features, ATTRIBUTE_SCHEMAS.get(schema_name))


def positive_int(model: str, option: str, value: object) -> int:
    """``value`` as a positive int, or a ``ModelError`` naming the model option (options come from user configs)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"model {model!r}: option {option} must be a positive integer, got {value!r}")
    return value
