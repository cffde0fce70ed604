"""Training: the ``Trainer`` loop, resumable atomic checkpoints, run logs and the on-device cached batch path."""

from reidkit.training.checkpoint import ModelCard, build_from_checkpoint, load_checkpoint, save_checkpoint
from reidkit.training.trainer import Trainer, TrainResult

__all__ = ["ModelCard", "TrainResult", "Trainer", "build_from_checkpoint", "load_checkpoint", "save_checkpoint"]
