"""Which torch device a model runs on, refused in one line naming the option when the machine cannot provide it.

``torch.device("banana")`` raises a bare RuntimeError, and a CUDA device on a machine without CUDA fails only deep
inside the first ``.to()``; every command that takes a device (``--device`` of test, extract, ingest, search, or
``train.device`` of a recipe) resolves it here first, naming the option the user actually set.
"""

from __future__ import annotations

import torch

from reidkit.errors import ConfigError


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """``auto`` picks CUDA when present; an unknown device, or CUDA on a machine without it, is a ``ConfigError``
    naming ``option`` (``--device`` or ``train.device``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"{option}={name!r} is not a torch device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}={name!r} but this machine has no CUDA GPU; use {option}=cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option}={name!r}: only cpu and cuda devices are supported")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"{option}={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    return device
