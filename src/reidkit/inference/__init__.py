"""Inference: features from a checkpoint for paths, PIL images or arrays, and testing a model on a dataset.

Nothing is imported here until it is asked for (PEP 562): ``reidkit search`` embeds its query with a cached
OpenVINO model (``query_ir``, ``model_choice``) without loading torch.
"""

from reidkit.lazy_exports import lazy_getattr

# Each exported name and the module that defines it.
_EXPORTS = {
    "EvalRun": "dataset_eval",
    "evaluate_on_dataset": "dataset_eval",
    "FeatureExtractor": "extractor",
    "untrained_model": "extractor",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
