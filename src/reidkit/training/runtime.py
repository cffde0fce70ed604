"""Device, precision and seeding decisions, made once per run and explained when refused."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from reidkit.config import ExperimentConfig
from reidkit.errors import ConfigError
from reidkit.inference import FeatureExtractor
from reidkit.inference.device import resolve_device as resolve_torch_device
from reidkit.models.model_file import ModelCard


def resolve_device(name: str) -> torch.device:
    """``train.device``: ``auto`` picks CUDA when present; an explicit CUDA request on a machine without it is a config
    error (``reidkit.inference.device.resolve_device``, naming the recipe key)."""
    return resolve_torch_device(name, "train.device")


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for full precision.

    ``auto`` = bf16 where CUDA supports it, else none. On a CPU, ``bf16`` is taken only where the CPU computes
    bf16 natively (AMX or AVX512-BF16, which oneDNN uses for convolutions and matrix products: the demo's step
    is 1.4x faster with channels_last, benchmarks/RESULTS.md); elsewhere bf16 is emulated and slower, so the run
    falls back to full precision (``cpu_bf16_fallback`` says when). fp16 autocast is refused on a CPU.
    """
    if mode == "none":
        return None
    if device.type != "cuda":
        if mode == "auto":
            return None
        if mode == "bf16":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        raise ConfigError(f"train.amp={mode} needs a CUDA device; on a CPU use bf16 (native bf16 CPUs), none or auto")
    if mode == "fp16":
        return torch.float16
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp=bf16 but this GPU has no bf16 support; use fp16 or auto")
    if mode == "auto" and not torch.cuda.is_bf16_supported():
        return None
    return torch.bfloat16


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AMX / AVX512-BF16)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_bf16_fallback(mode: str, device: torch.device) -> bool:
    """Whether ``train.amp=bf16`` on this CPU falls back to full precision (no native bf16): worth a line."""
    return mode == "bf16" and device.type != "cuda" and not cpu_has_native_bf16()


def evaluation_extractor(
    model: nn.Module, card: ModelCard, cfg: ExperimentConfig, device: torch.device
) -> FeatureExtractor:
    """The extractor a run evaluates ``model`` with, as its config says (test batch size, flip, workers, progress,
    ``train.eval_backend``; OpenVINO runs on the CPU only, so a GPU run evaluates with PyTorch)."""
    return FeatureExtractor(
        model,
        device=device,
        batch_size=cfg.data.test_batch_size,
        flip=cfg.train.eval_flip,
        card=card,
        workers=cfg.data.workers,
        progress=cfg.train.progress,
        backend=cfg.train.eval_backend if device.type == "cpu" else "torch",
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, *more: int) -> int:
    """A well-mixed 63-bit seed for one epoch's data randomness: a pure function of (seed, epoch, *more)."""
    return int(np.random.SeedSequence([seed, epoch, *more]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))
