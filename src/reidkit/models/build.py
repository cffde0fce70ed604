"""``build_model``: a ReID model by name, its options checked against the model's constructor."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reidkit.errors import ModelError
from reidkit.models.backbones import build_backbone
from reidkit.models.bnneck import BNNeck
from reidkit.models.ide import IDE
from reidkit.models.mgn import MGN
from reidkit.models.pcb import PCB
from reidkit.models.trinet import TriNet
from reidkit.models.types import ReidModel

MODELS = ("mgn", "ide", "trinet", "pcb", "bnneck")


def build_model(
    name: str,
    num_classes: int,
    backbone: str = "resnet50",
    pretrained: str | Path | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> ReidModel:
    """Build model ``name`` with ``num_classes`` training identities.

    ``pretrained``: None (random init), ``"imagenet"`` or a path to backbone weights. Model options come as
    keywords or in ``kwargs`` (so ``build_model(**asdict(model.spec))`` rebuilds a checkpointed model); they are
    checked against the model's constructor before any weights are loaded.
    """
    match name:
        case "mgn":
            model_class: Callable[..., ReidModel] = MGN
        case "ide":
            model_class = IDE
        case "trinet":
            model_class = TriNet
        case "pcb":
            model_class = PCB
        case "bnneck":
            model_class = BNNeck
        case _:
            raise ModelError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    merged = {**(kwargs or {}), **options}
    accepted = [p for p in inspect.signature(model_class).parameters if p not in ("backbone", "num_classes")]
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise ModelError(f"model {name!r} has no option {', '.join(unknown)}; its options are {', '.join(accepted)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    return model_class(build_backbone(backbone, pretrained), num_classes, **merged)
