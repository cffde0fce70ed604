"""The attribute loss of a model with an attribute head: one softmax cross-entropy per attribute group, averaged.

Attribute labels are per identity (Market-1501's are), so the loss keeps a table from each training class to its
identity's value index in every group, and a batch needs nothing but the identity labels it already carries: the
P x K sampler, the cached batches and the distributed gathering stay as they are. Averaging over the groups follows
APR (Lin et al. 2019), whose objective adds the identity loss to the mean of the attribute losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidkit.attribute_schema import group_slices
from reidkit.errors import ConfigError

MISSING = -100  # the value of a class with no label in a group: cross_entropy's ignore_index


class AttributeLoss(nn.Module):
    """``targets_by_class`` is (num_classes, num_groups), each entry a value index or ``MISSING``."""

    def __init__(self, targets_by_class: Tensor, group_sizes: Sequence[int]) -> None:
        super().__init__()
        if targets_by_class.ndim != 2 or targets_by_class.shape[1] != len(group_sizes):
            raise ConfigError(
                f"attribute labels have {tuple(targets_by_class.shape)} entries; expected one per class and group "
                f"({len(group_sizes)} groups)"
            )
        self.register_buffer("targets_by_class", targets_by_class.long(), persistent=False)
        self.slices = group_slices(group_sizes)

    def forward(self, attribute_logits: Tensor, labels: Tensor) -> Tensor:
        targets = self.targets_by_class.to(labels.device)[labels]  # (B, groups)
        losses = []
        for column, block in enumerate(self.slices):
            wanted = targets[:, column]
            if bool((wanted != MISSING).any()):
                losses.append(F.cross_entropy(attribute_logits[:, block].float(), wanted, ignore_index=MISSING))
        if not losses:
            return attribute_logits.sum() * 0.0
        return torch.stack(losses).mean()
