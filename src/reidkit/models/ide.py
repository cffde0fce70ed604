"""IDE: the ID-discriminative embedding baseline (Zheng, Yang & Hauptmann, "Person Re-identification: Past,
Present and Future", 2016), with a ResNet-50 trunk.

The network is trained as an identity classifier and its pooled feature is used as the descriptor:
backbone -> global average pool -> [optional bottleneck] -> linear classifier. The default head is the original
one, a single ``Linear(C, num_classes)`` on the pooled feature. ``bottleneck_dim`` inserts
``Linear(C, d) + BN + ReLU + Dropout`` before the classifier, the variant popularised by later IDE baselines;
either way the test feature is the pooled backbone feature (C = 2048 for ResNet-50), so that it stays comparable
across heads.
"""

from __future__ import annotations

from torch import Tensor, nn

from reidkit.errors import ModelError
from reidkit.models.backbones import Backbone
from reidkit.models.layers import classifier, positive_int
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs


class IDE(ReidModel):
    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        bottleneck_dim: int | None = None,
        dropout: float = 0.5,
        last_stride: int = 2,
    ) -> None:
        if bottleneck_dim is not None:
            bottleneck_dim = positive_int("ide", "bottleneck_dim", bottleneck_dim)
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"model 'ide': option dropout must be in [0, 1), got {dropout!r}")
        spec = ModelSpec(
            name="ide",
            num_classes=num_classes,
            backbone=backbone.name,
            kwargs={"bottleneck_dim": bottleneck_dim, "dropout": dropout, "last_stride": last_stride},
        )
        super().__init__(spec, feature_dim=backbone.channels)
        self.body = backbone.full(last_stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        if bottleneck_dim is None:
            self.bottleneck: nn.Module = nn.Identity()
            head_dim = backbone.channels
        else:
            linear = nn.Linear(backbone.channels, bottleneck_dim)
            nn.init.kaiming_normal_(linear.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(linear.bias)
            self.bottleneck = nn.Sequential(
                linear, nn.BatchNorm1d(bottleneck_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
            )
            head_dim = bottleneck_dim
        self.classifier = classifier(head_dim, num_classes)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.body]

    def forward(self, x: Tensor) -> ReidOutputs | Tensor:
        feature = self.pool(self.body(x)).flatten(1)
        if not self.training:
            return feature
        return ReidOutputs(logits=[self.classifier(self.bottleneck(feature))], metric_features=[])
