"""BNNeck "strong baseline" (Luo et al., "Bag of Tricks and A Strong Baseline for Deep Person
Re-identification", CVPR-W 2019).

Last stride 1, global average pooling, then a BatchNorm "neck" between the two losses: the triplet loss reads the
pooled feature before the BN, the softmax reads it after, so the two losses stop pulling one feature space in
conflicting directions. The BN's bias is frozen at zero and the classifier has no bias: the normalised features
stay centred on the origin and the classes are separated by angle, which suits the Euclidean/cosine retrieval done
with the post-BN test feature.
"""

from __future__ import annotations

from torch import Tensor, nn

from reidkit.models.backbones import Backbone
from reidkit.models.layers import classifier
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs


class BNNeck(ReidModel):
    def __init__(self, backbone: Backbone, num_classes: int, last_stride: int = 1) -> None:
        spec = ModelSpec(
            name="bnneck", num_classes=num_classes, backbone=backbone.name, kwargs={"last_stride": last_stride}
        )
        super().__init__(spec, feature_dim=backbone.channels)
        self.body = backbone.full(last_stride)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.neck = nn.BatchNorm1d(backbone.channels)
        self.neck.bias.requires_grad_(False)
        self.classifier = classifier(backbone.channels, num_classes, bias=False)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.body]

    def forward(self, x: Tensor) -> ReidOutputs | Tensor:
        pre_bn = self.pool(self.body(x)).flatten(1)
        post_bn = self.neck(pre_bn)
        if not self.training:
            return post_bn
        return ReidOutputs(logits=[self.classifier(post_bn)], metric_features=[pre_bn])
