"""Resume state: the global generators come back exactly as they were when ``last.pt`` was written."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from reidkit.models.model_file import load_checkpoint, save_checkpoint
from reidkit.training.resume_state import capture_rng_state, restore_rng_state


def test_rng_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.standard_normal()  # leave a cached Gaussian in NumPy's legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(5)  # move every generator on
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3))
    assert again[0] == expected[0] and again[1] == expected[1] and torch.equal(again[2], expected[2])
