"""Inference: features from a checkpoint for paths, PIL images or arrays, and testing a model on a dataset."""

from reidkit.inference.dataset_eval import EvalRun, evaluate_on_dataset
from reidkit.inference.extractor import FeatureExtractor, untrained_model

__all__ = ["EvalRun", "FeatureExtractor", "evaluate_on_dataset", "untrained_model"]
