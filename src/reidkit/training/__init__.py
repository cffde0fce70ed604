"""Training: ``Trainer`` (a run from its config), ``TrainLoop`` and its hooks, resume state, run logs and the
on-device cached batch path.

The model file a run writes (format, card, atomic save / load) belongs to ``reidkit.models.model_file``; training adds
only what resuming needs (optimiser, scheduler, scaler and RNG states under ``training_state``).
"""

from reidkit.training.hooks import Hook
from reidkit.training.loop import TrainLoop
from reidkit.training.trainer import Trainer, TrainResult

__all__ = ["Hook", "TrainLoop", "TrainResult", "Trainer"]
