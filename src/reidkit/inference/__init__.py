"""Inference: features from a checkpoint for paths, PIL images or arrays, and testing a model on a dataset.

Nothing is imported here until it is asked for (PEP 562): ``reidkit search`` embeds its query with a cached
OpenVINO model (``query_ir``, ``model_choice``) without loading torch.
"""

import importlib
from typing import Any

# Each exported name and the module that defines it.
_EXPORTS = {
    "EvalRun": "dataset_eval",
    "evaluate_on_dataset": "dataset_eval",
    "FeatureExtractor": "extractor",
    "untrained_model": "extractor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The exported names, each imported from its module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
