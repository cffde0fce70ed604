"""MGN: Multiple Granularity Network (Wang et al., "Learning Discriminative Features with Multiple Granularities
for Person Re-Identification", ACM MM 2018).

One trunk up to res_conv4_1, then three branches that each own a copy of res_conv4_2.. and res_conv5:

- global: res_conv5_1 keeps stride 2 (12x4 map at 384x128); one max-pooled feature;
- part-2 / part-3: res_conv5_1 at stride 1 (24x8 map), so the map is tall enough to cut into 2 / 3 horizontal
  stripes; each branch gives one global max-pooled feature plus one max-pooled feature per stripe.

Every pooled feature gets its own 1x1 conv + BN + ReLU reduction to 256-d. Losses follow the paper: a softmax
on each of the 8 features, read from the 2048-d pooled vector for the 3 global ones and from the 256-d reduced
vector for the 5 stripes, and a batch-hard triplet on each of the 3 reduced global features. At test time the 8
reduced vectors are concatenated (8 x 256 = 2048-d). With the ``attributes`` option an attribute head reads that
test feature (``layers.AttributeHead``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reidkit.errors import ModelError
from reidkit.models.backbones import Backbone
from reidkit.models.layers import attribute_head, classifier, positive_int, reduction
from reidkit.models.types import ModelSpec, ReidModel, ReidOutputs


class MGN(ReidModel):
    """``parts`` gives one part branch per entry, cut into that many stripes (paper: (2, 3)).

    ``part_stride=2`` keeps the part branches' down-sampling: about a third cheaper on ResNet-50 (see
    docs/models.md) but the stripes then come from a map half as tall. The paper uses 1.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        reduction_dim: int = 256,
        parts: Sequence[int] = (2, 3),
        part_stride: int = 1,
        attributes: str | None = None,
    ) -> None:
        reduction_dim = positive_int("mgn", "reduction_dim", reduction_dim)
        if isinstance(parts, str) or not isinstance(parts, Sequence) or len(parts) == 0:
            raise ModelError(f"model 'mgn': option parts must be a non-empty list of stripe counts, got {parts!r}")
        stripes = tuple(positive_int("mgn", "parts", n) for n in parts)
        if part_stride not in (1, 2):
            raise ModelError(f"model 'mgn': option part_stride must be 1 or 2, got {part_stride!r}")
        num_globals = 1 + len(stripes)
        spec = ModelSpec(
            name="mgn",
            num_classes=num_classes,
            backbone=backbone.name,
            kwargs={"reduction_dim": reduction_dim, "parts": list(stripes), "part_stride": part_stride,
                    "attributes": attributes},
        )
        super().__init__(spec, feature_dim=reduction_dim * (num_globals + sum(stripes)))
        self.stripes = stripes
        channels = backbone.channels
        self.shared = backbone.shared
        self.global_branch = backbone.branch_copy(last_stride=2)
        self.part_branches = nn.ModuleList(backbone.branch_copy(last_stride=part_stride) for _ in stripes)
        self.global_pool = nn.AdaptiveMaxPool2d(1)
        self.stripe_pools = nn.ModuleList(nn.AdaptiveMaxPool2d((n, 1)) for n in stripes)
        self.global_reductions = nn.ModuleList(reduction(channels, reduction_dim) for _ in range(num_globals))
        self.stripe_reductions = nn.ModuleList(reduction(channels, reduction_dim) for _ in range(sum(stripes)))
        self.global_classifiers = nn.ModuleList(classifier(channels, num_classes) for _ in range(num_globals))
        self.stripe_classifiers = nn.ModuleList(classifier(reduction_dim, num_classes) for _ in range(sum(stripes)))
        self.attribute_head = attribute_head("mgn", self.feature_dim, attributes)

    def backbone_modules(self) -> list[nn.Module]:
        return [self.shared, self.global_branch, self.part_branches]

    def trunk(self) -> nn.Sequential:
        return self.shared

    def branch_stripes(self) -> dict[str, int]:
        """``{"global": 1, "part-2": 2, "part-3": 3}`` for the paper's parts; a repeated count gets a suffix."""
        names = ["global"] + [
            f"part-{n}" if self.stripes.count(n) == 1 else f"part-{n}-{i}" for i, n in enumerate(self.stripes, 1)
        ]
        return dict(zip(names, (1, *self.stripes), strict=True))

    def branch_maps(self, x: Tensor) -> dict[str, Tensor]:
        """The global branch's map (stride 32) and each part branch's (stride 16 with the paper's part_stride=1)."""
        trunk = self.shared(x)
        branches = [self.global_branch, *self.part_branches]
        return {name: branch(trunk) for name, branch in zip(self.branch_stripes(), branches, strict=True)}

    def forward(self, x: Tensor) -> ReidOutputs | Tensor:
        pooled_globals, reduced_globals, reduced_stripes = self._pooled_and_reduced(x)
        if not self.training:
            return torch.cat(reduced_globals + reduced_stripes, dim=1)
        logits = [cls(p.flatten(1)) for cls, p in zip(self.global_classifiers, pooled_globals, strict=True)]
        logits += [cls(r) for cls, r in zip(self.stripe_classifiers, reduced_stripes, strict=True)]
        attribute_logits = None
        if self.attribute_head is not None:
            attribute_logits = self.attribute_head(torch.cat(reduced_globals + reduced_stripes, dim=1))
        return ReidOutputs(logits=logits, metric_features=reduced_globals, attribute_logits=attribute_logits)

    def embed_with_attributes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.attribute_head is None:
            return super().embed_with_attributes(x)
        _, reduced_globals, reduced_stripes = self._pooled_and_reduced(x)
        feature = torch.cat(reduced_globals + reduced_stripes, dim=1)
        return feature, self.attribute_head(feature)

    def _pooled_and_reduced(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """The pooled global maps (B, C, 1, 1) and the reduced global and stripe vectors (B, reduction_dim)."""
        maps = list(self.branch_maps(x).values())
        pooled_globals = [self.global_pool(m) for m in maps]  # (B, C, 1, 1) each
        pooled_stripes: list[Tensor] = []
        for part_map, pool, count in zip(maps[1:], self.stripe_pools, self.stripes, strict=True):
            stripes = pool(part_map)  # (B, C, count, 1)
            pooled_stripes.extend(stripes[:, :, i : i + 1] for i in range(count))
        reduced_globals = [red(p).flatten(1) for red, p in zip(self.global_reductions, pooled_globals, strict=True)]
        reduced_stripes = [red(p).flatten(1) for red, p in zip(self.stripe_reductions, pooled_stripes, strict=True)]
        return pooled_globals, reduced_globals, reduced_stripes
