"""Batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss", 2017).

For every anchor in a P x K batch: its farthest same-identity sample and its closest other-identity sample, by
Euclidean (not squared) distance, then ``relu(d_ap - d_an + margin)`` or, with ``margin=None``, the paper's soft
margin ``softplus(d_ap - d_an)``. Anchors with no positive or no negative in the batch contribute nothing, and
the loss is averaged over the remaining anchors; everything is done with masks, so there is no data-dependent
Python control flow and the loss traces cleanly under ``torch.compile``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reidkit.errors import ConfigError

# sqrt has an infinite gradient at 0: distances below this (duplicates, an anchor with itself) get zero gradient.
_MIN_SQUARED_DISTANCE = 1e-12


def euclidean_distances(features: Tensor) -> Tensor:
    """(B, B) Euclidean distances with a gradient that stays finite for identical rows."""
    squared_norms = features.pow(2).sum(dim=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2.0 * features @ features.T
    return squared.clamp_min(_MIN_SQUARED_DISTANCE).sqrt()


class BatchHardTripletLoss(nn.Module):
    def __init__(self, margin: float | None = 1.2) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ConfigError(f"loss.triplet_margin must be >= 0 (or soft margin), got {margin!r}")
        self.margin = margin

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        dist = euclidean_distances(features.float())
        same = labels[:, None] == labels[None, :]
        not_self = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        positive = same & not_self
        negative = ~same
        # Distances are >= 0, so 0 is a neutral fill for the max and the largest float one for the min.
        hardest_positive = dist.masked_fill(~positive, 0.0).amax(dim=1)
        hardest_negative = dist.masked_fill(~negative, torch.finfo(dist.dtype).max).amin(dim=1)
        gap = hardest_positive - hardest_negative
        per_anchor = F.softplus(gap) if self.margin is None else F.relu(gap + self.margin)
        valid = positive.any(dim=1) & negative.any(dim=1)
        per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
        return per_anchor.sum() / valid.sum().clamp_min(1)
