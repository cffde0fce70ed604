"""Activation maps: where in a crop each branch of a model responds, as in Fig. 5 of the MGN paper.

A branch's map is the energy of its last feature map: the mean over channels of the squared activation at each
position (the activation-based attention of Zagoruyko & Komodakis, "Paying More Attention to Attention", 2017).
It is chosen over Grad-CAM because

- the test feature is pooled from exactly this map (MGN max-pools it, per stripe for the part branches), so a
  position with high energy is one the feature is made of;
- Grad-CAM needs a score to differentiate, and a ReID model at test time has none: the people it compares are not
  among its training classes, and TriNet has no classifier at all;
- it needs no gradient and no choice of target, so the picture is the same for every model and every run.

The maps come from ``ReidModel.branch_maps``, the same call the model's forward pools from, so they cannot drift
from what the model computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reidkit.data import build_transforms
from reidkit.errors import ModelError
from reidkit.inference.extractor import ImageInput, to_pil
from reidkit.inference.foreign_model import is_foreign_model
from reidkit.models.model_file import ModelCard, load_model


@dataclass(frozen=True)
class BranchMap:
    """One branch's energy map (h, w) at its feature resolution, and the stripes its feature is pooled over."""

    name: str
    stripes: int
    energy: np.ndarray


@dataclass(frozen=True)
class ActivationMaps:
    """A crop as the model sees it (resized to the input size, RGB uint8) and one map per branch."""

    image: np.ndarray
    branches: list[BranchMap]


def activation_maps(
    checkpoint_or_model: str | Path | nn.Module,
    images: Sequence[ImageInput],
    card: ModelCard | None = None,
    device: str | torch.device = "cpu",
) -> list[ActivationMaps]:
    """Per-branch energy maps of each image, with the model's own preprocessing (``card``: input size, mean, std).

    A model passed in needs its ``card``; a checkpoint brings its own.
    """
    if isinstance(checkpoint_or_model, nn.Module):
        if card is None:
            raise ModelError("activation_maps(model) needs card= (input size, mean, std) to preprocess images")
        model = checkpoint_or_model
    elif is_foreign_model(checkpoint_or_model):
        raise ModelError(
            f"{checkpoint_or_model}: activation maps read a reidkit model's branch feature maps in PyTorch; an ONNX / "
            "OpenVINO file has none to read (pass the .pt it was exported from)"
        )
    else:
        model, card = load_model(Path(checkpoint_or_model))
    height, width = card.input_size
    transform = build_transforms(height, width, train=False, mean=card.mean, std=card.std)
    pictures = [to_pil(image, index) for index, image in enumerate(images)]
    batch = torch.stack([transform(picture) for picture in pictures]).to(device)
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            maps = model.branch_maps(batch)
    finally:
        model.train(was_training)
    stripes = model.branch_stripes()
    energies = {name: fmap.float().pow(2).mean(dim=1).cpu().numpy() for name, fmap in maps.items()}
    return [
        ActivationMaps(
            image=np.asarray(picture.resize((width, height))),
            branches=[BranchMap(name, stripes[name], energy[i]) for name, energy in energies.items()],
        )
        for i, picture in enumerate(pictures)
    ]
