"""A backbone cut into the part every branch shares and the part each branch owns.

MGN branches a network part-way through; the single-branch baselines simply glue the two halves back together.
Keeping one cut per backbone means every model sees the same layers with the same ImageNet weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from reidkit.errors import ModelError


@dataclass
class Backbone:
    """``shared`` runs once per image; ``branch`` is the template a model copies for each of its branches.

    ``branch`` contains exactly one spatial down-sampling step (ResNet-50's res_conv5_1, MobileNetV2's first
    stride-32 block), which ``branch_copy`` can turn off: the "last stride 1" trick that doubles the final map's
    height and width for part-based and BNNeck models.
    """

    name: str
    shared: nn.Sequential
    branch: nn.Sequential
    channels: int

    def branch_copy(self, last_stride: int) -> nn.Sequential:
        """An independent copy of ``branch`` (own weights, same initial values), down-sampling by ``last_stride``."""
        if last_stride not in (1, 2):
            raise ModelError(f"option last_stride must be 1 or 2, got {last_stride!r}")
        branch = copy.deepcopy(self.branch)
        for module in branch.modules():
            if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
                module.stride = (last_stride, last_stride)
        return branch

    def full(self, last_stride: int) -> nn.Sequential:
        """The whole network as one module (for single-branch models); it reuses ``shared`` itself, not a copy."""
        return nn.Sequential(self.shared, self.branch_copy(last_stride))
