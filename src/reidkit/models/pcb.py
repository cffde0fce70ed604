"""PCB: Part-based Convolutional Baseline (Sun et al., "Beyond Part Models: Person Retrieval with Refined Part
Pooling", ECCV 2018), without the RPP refinement.

The last down-sampling is removed (24x8 map at 384x128), the map is average-pooled into 6 horizontal stripes,
and each stripe gets its own 1x1 conv + BN + ReLU reduction to 256-d and its own classifier (6 softmax losses).
The test feature is the 6 reduced vectors concatenated (6 x 256 = 1536-d), the paper's compact variant; its other
variant concatenates the 6 un-reduced 2048-d stripes (12288-d), which costs 8x the storage for a small gain.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reidkit.models.backbones import Backbone
from reidkit.models.layers import classifier, positive_int, reduction
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs


class PCB(ReidModel):
    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        stripes: int = 6,
        reduction_dim: int = 256,
        last_stride: int = 1,
    ) -> None:
        stripes = positive_int("pcb", "stripes", stripes)
        reduction_dim = positive_int("pcb", "reduction_dim", reduction_dim)
        spec = ModelSpec(
            name="pcb",
            num_classes=num_classes,
            backbone=backbone.name,
            kwargs={"stripes": stripes, "reduction_dim": reduction_dim, "last_stride": last_stride},
        )
        super().__init__(spec, feature_dim=stripes * reduction_dim)
        self.stripes = stripes
        self.body = backbone.full(last_stride)
        self.pool = nn.AdaptiveAvgPool2d((stripes, 1))
        self.reductions = nn.ModuleList(reduction(backbone.channels, reduction_dim) for _ in range(stripes))
        self.classifiers = nn.ModuleList(classifier(reduction_dim, num_classes) for _ in range(stripes))

    def backbone_modules(self) -> list[nn.Module]:
        return [self.body]

    def branch_stripes(self) -> dict[str, int]:
        return {"backbone": self.stripes}

    def forward(self, x: Tensor) -> ReidOutputs | Tensor:
        pooled = self.pool(self.body(x))  # (B, C, stripes, 1)
        reduced = [red(pooled[:, :, i : i + 1]).flatten(1) for i, red in enumerate(self.reductions)]
        if not self.training:
            return torch.cat(reduced, dim=1)
        logits = [cls(r) for cls, r in zip(self.classifiers, reduced, strict=True)]
        return ReidOutputs(logits=logits, metric_features=[])
