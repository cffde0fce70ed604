"""``build_model``: a ReID model by name, its options checked against the model's constructor.

``MODELS`` is the one table of models: a new model is its own file plus one line here.
"""

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
from reidkit.registry import Registry

MODELS: Registry[Callable[..., ReidModel]] = Registry("model", ModelError)
MODELS.add("mgn", MGN, "MGN (Wang et al. 2018): a global and two part branches (2 and 3 stripes), 2048-d")
MODELS.add("ide", IDE, "IDE: backbone + softmax classifier on the pooled feature")
MODELS.add("trinet", TriNet, "TriNet (Hermans et al. 2017): batch-hard triplet, 128-d embedding")
MODELS.add("pcb", PCB, "PCB (Sun et al. 2018): 6 horizontal stripes, a classifier each")
MODELS.add("bnneck", BNNeck, "BNNeck (Luo et al. 2019): triplet before, softmax after a BN neck")


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
    model_class = MODELS.get(name)
    merged = {**(kwargs or {}), **options}
    accepted = [p for p in inspect.signature(model_class).parameters if p not in ("backbone", "num_classes")]
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise ModelError(f"model {name!r} has no option {', '.join(unknown)}; its options are {', '.join(accepted)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"model {name!r}: num_classes must be a positive integer, got {num_classes!r}")
    return model_class(build_backbone(backbone, pretrained), num_classes, **merged)
