"""The standard ReID image pipelines (torchvision.transforms.v2) for training and for testing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

# The ImageNet statistics are a config default (``DataConfig.mean`` / ``std``); defined once, in reidkit.config.
from reidkit.config import IMAGENET_MEAN, IMAGENET_STD


def build_transforms(
    height: int,
    width: int,
    train: bool,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    random_erasing: float = 0.5,
    pad: int = 10,
    flip: float = 0.5,
) -> v2.Compose:
    """PIL image -> normalised float tensor (3, height, width).

    Training adds the augmentations of the MGN/BoT recipes: horizontal flip, pad-and-crop jitter and random
    erasing. Erasing runs after normalisation and fills with 0, i.e. the dataset mean colour, so erased patches
    carry no colour cue. A probability or pad of 0 leaves that step out.
    """
    steps: list[torch.nn.Module] = [v2.ToImage(), v2.Resize((height, width), antialias=True)]
    if train and flip > 0:
        steps.append(v2.RandomHorizontalFlip(p=flip))
    if train and pad > 0:
        steps += [v2.Pad(pad), v2.RandomCrop((height, width))]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    if train and random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    return v2.Compose(steps)
