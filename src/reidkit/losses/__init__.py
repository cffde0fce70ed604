"""Losses for ReID training: label-smoothed cross-entropy, batch-hard triplet, and ``ReidLoss`` which wires them
to a model's ``ReidOutputs``."""

from reidkit.losses.attribute import AttributeLoss
from reidkit.losses.cross_entropy import CrossEntropyLoss
from reidkit.losses.reid_loss import LossBreakdown, LossWeights, ReidLoss
from reidkit.losses.triplet import BatchHardTripletLoss, euclidean_distances

__all__ = [
    "AttributeLoss",
    "BatchHardTripletLoss",
    "CrossEntropyLoss",
    "LossBreakdown",
    "LossWeights",
    "ReidLoss",
    "euclidean_distances",
]
