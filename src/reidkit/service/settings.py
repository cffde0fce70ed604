"""The service's knobs, one frozen dataclass: ``reidkit serve`` fills it from its options, tests build their own."""

from __future__ import annotations

from dataclasses import dataclass

from reidkit.image_open import MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ServiceSettings:
    """Limits every request meets (docs/service.md explains each).

    ``max_image_bytes``: a query photo's size (a phone photo is 3-8 MB); ``max_video_bytes``: an uploaded video's;
    ``max_image_pixels``: what a photo may declare before it is decoded (decompression bombs);
    ``requests_per_minute``: per token, over a sliding minute; ``failed_auth_per_minute``: failed authentications
    per client address, over a sliding minute (then 429 without a look at the token); ``max_top_k``: hits one
    search may return.
    ``checkpoint``: the ReID model when the store's own cannot be found where it was (as ``reidkit search``).
    ``embed_backend``: what runs the ReID model on query crops: ``auto`` (OpenVINO on the CPU when installed, about
    3x faster per crop than PyTorch, features equal to 1e-4; else ONNX Runtime), ``torch`` (exactly what ``reidkit
    search --embed-backend torch`` runs), ``openvino`` or ``onnxruntime`` (docs/export.md).
    """

    max_image_bytes: int = 20 * 1024 * 1024
    max_video_bytes: int = 4 * 1024 * 1024 * 1024
    max_image_pixels: int = MAX_IMAGE_PIXELS
    requests_per_minute: int = 120
    failed_auth_per_minute: int = 20
    max_top_k: int = 100
    checkpoint: str | None = None
    device: str = "cpu"
    embed_backend: str = "auto"
