"""TriNet (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person Re-Identification", 2017).

backbone -> global average pool -> Linear(C, 1024) + BN + ReLU -> Linear(1024, 128). Trained with the
batch-hard triplet loss only (the paper's soft margin: ``ReidLoss(triplet_margin=None)``); there is no
classifier, so ``num_classes`` is recorded but unused. The 128-d embedding is the test feature.
"""

from __future__ import annotations

from torch import Tensor, nn

from reidkit.models.backbones import Backbone
from reidkit.models.layers import positive_int
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs


class TriNet(ReidModel):
    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        hidden_dim: int = 1024,
        embedding_dim: int = 128,
        last_stride: int = 2,
    ) -> None:
        hidden_dim = positive_int("trinet", "hidden_dim", hidden_dim)
        embedding_dim = positive_int("trinet", "embedding_dim", embedding_dim)
        spec = ModelSpec(
            name="trinet",
            num_classes=num_classes,
            backbone=backbone.name,
            kwargs={"hidden_dim": hidden_dim, "embedding_dim": embedding_dim, "last_stride": last_stride},
        )
        super().__init__(spec, feature_dim=embedding_dim)
        self.body = backbone.full(last_stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = nn.Linear(backbone.channels, hidden_dim)
        nn.init.kaiming_normal_(hidden.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(hidden.bias)
        self.head = nn.Sequential(
            hidden, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, embedding_dim)
        )

    def backbone_modules(self) -> list[nn.Module]:
        return [self.body]

    def forward(self, x: Tensor) -> ReidOutputs | Tensor:
        embedding = self.head(self.pool(self.body(x)).flatten(1))
        if not self.training:
            return embedding
        return ReidOutputs(logits=[], metric_features=[embedding])
