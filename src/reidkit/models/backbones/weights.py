"""Reading ImageNet weights: local files, the torch hub cache, or a download that fails fast when offline.

torchvision's own download blocks on DNS/TCP for a long time on a machine without internet, so before calling it
we look in the hub cache and then probe the host (or the configured HTTPS proxy) with a short connect timeout.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor
from torchvision.models import WeightsEnum

from reidkit.errors import ModelError

CONNECT_TIMEOUT_S = 3.0


def load_state_dict_file(path: Path, what: str) -> dict[str, Tensor]:
    """A ``name -> tensor`` state dict from ``path``; anything else is the user's file problem, said in one line."""
    if not path.is_file():
        raise ModelError(f"{what} weights file {path} does not exist; pass --pretrained PATH to a .pth state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many unrelated types for corrupt or non-torch files
        raise ModelError(f"{what} weights file {path} cannot be read as a torch state dict ({exc})") from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{what} weights file {path} is not a state dict (a mapping of parameter names to tensors)")
    return dict(state)


def hub_cache_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (or will keep) the download: the name ``load_state_dict_from_url`` gives it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def download_torchvision_weights(weights: WeightsEnum, what: str, alternative: str) -> dict[str, Tensor]:
    """torchvision's pretrained state dict, from the hub cache if present, else downloaded (hash-checked).

    ``alternative`` is the caller's other way of supplying the weights, appended to the offline message.
    """
    cached = hub_cache_file(weights)
    if not cached.is_file():
        reason = _unreachable_reason(weights.url)
        if reason is not None:
            raise ModelError(_offline_message(weights, what, cached, reason, alternative))
    try:
        return dict(weights.get_state_dict(progress=False, check_hash=True))
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch is a RuntimeError
        raise ModelError(_offline_message(weights, what, cached, str(exc), alternative)) from exc


def _unreachable_reason(url: str) -> str | None:
    """Why ``url``'s host (or the HTTPS proxy urllib would use) refuses a TCP connection, or None if it accepts."""
    host = urlparse(url).hostname or ""
    target = (host, 443)
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        target = (parsed.hostname or "", parsed.port or 80)
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"cannot connect to {target[0]}:{target[1]}: {exc}"


def _offline_message(weights: WeightsEnum, what: str, cached: Path, reason: str, alternative: str) -> str:
    return (
        f"cannot get the ImageNet {what} weights (torchvision {type(weights).__name__}.{weights.name}, {weights.url}): "
        f"{reason}. Either run once on a machine with internet access (torchvision caches them as {cached}), "
        f"or {alternative}"
    )
