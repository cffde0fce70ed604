"""COCO-trained torchvision detectors restricted to the person class, for machines with a GPU or without OpenVINO.

The weights come from torchvision's download server into torch's hub cache. Loading never hangs offline: the cache
is checked first, then the server is probed with a short TCP connect, and only then is anything downloaded; when it
cannot be reached the ``ModelError`` says where to put the file or how to pass it directly.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import numpy as np
import torch
from torchvision.models import detection

from reidkit.errors import ConfigError, ModelError
from reidkit.video.detectors.boxes import finish_detections

TorchvisionArch = Literal["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"]

_ARCHES: dict[str, tuple[Any, Any]] = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        detection.fasterrcnn_mobilenet_v3_large_320_fpn,
        detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.DEFAULT,
    ),
    "ssdlite320_mobilenet_v3_large": (
        detection.ssdlite320_mobilenet_v3_large,
        detection.SSDLite320_MobileNet_V3_Large_Weights.DEFAULT,
    ),
}
COCO_PERSON_LABEL = 1
COCO_NUM_CLASSES = 91


@dataclass
class TorchvisionDetector:
    """Wraps a torchvision detection model (COCO labels) as a person ``Detector``.

    ``score_threshold`` defaults low (0.1) so ByteTrack's second stage sees weak detections; torchvision's own
    ``box_score_thresh`` (0.05 for Faster R-CNN, 0.001 for SSDlite) sits below it.
    """

    model: torch.nn.Module
    score_threshold: float = 0.1
    device: str = "cpu"
    person_label: int = COCO_PERSON_LABEL
    name: str = "torchvision"
    _device: torch.device = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise ConfigError(f"detector score_threshold must be in [0, 1), got {self.score_threshold}")
        try:
            self._device = torch.device(self.device)
        except RuntimeError as exc:
            raise ConfigError(f"unknown torch device {self.device!r} for the torchvision detector") from exc
        self.model = self.model.eval().to(self._device)

    def detect(self, image_rgb: np.ndarray) -> np.ndarray:
        return self.detect_batch([image_rgb])[0]

    @torch.inference_mode()
    def detect_batch(self, images_rgb: list[np.ndarray]) -> list[np.ndarray]:
        if not images_rgb:
            return []
        tensors = [
            torch.from_numpy(np.ascontiguousarray(image)).to(self._device).permute(2, 0, 1).float().div_(255.0)
            for image in images_rgb
        ]
        outputs = self.model(tensors)
        detections = []
        for image, output in zip(images_rgb, outputs, strict=True):
            keep = (output["labels"] == self.person_label) & (output["scores"] >= self.score_threshold)
            boxes = output["boxes"][keep].cpu().numpy()
            scores = output["scores"][keep].cpu().numpy()
            detections.append(finish_detections(boxes, scores, image.shape))
        return detections


def load_torchvision_detector(
    arch: TorchvisionArch = "fasterrcnn_mobilenet_v3_large_320_fpn",
    weights_path: Path | None = None,
    score_threshold: float = 0.1,
    device: str = "cpu",
    connect_timeout_s: float = 3.0,
) -> TorchvisionDetector:
    """Build ``arch`` with COCO weights from ``weights_path``, torch's hub cache, or (if reachable) the download."""
    if arch not in _ARCHES:
        raise ConfigError(f"unknown torchvision detector {arch!r}; choose one of {', '.join(_ARCHES)}")
    builder, weights = _ARCHES[arch]
    state = _load_state(weights_path) if weights_path is not None else _cached_or_downloaded(weights, connect_timeout_s)
    # Built untrained and then loaded, so torchvision never downloads behind our back; the only difference from
    # builder(weights=...) is BatchNorm2d instead of FrozenBatchNorm2d, which computes the same in eval mode.
    model = builder(weights=None, weights_backbone=None, num_classes=COCO_NUM_CLASSES)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        source = weights_path or weights.url
        raise ModelError(f"{source} does not hold {arch} COCO weights: {str(exc).splitlines()[0]}") from exc
    return TorchvisionDetector(model, score_threshold=score_threshold, device=device, name=f"torchvision:{arch}")


def _cached_or_downloaded(weights: Any, connect_timeout_s: float) -> dict[str, torch.Tensor]:
    url: str = weights.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return _load_state(cached)
    host = urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=connect_timeout_s).close()
    except OSError as exc:
        raise ModelError(
            f"torchvision detector weights are not cached and {host} is unreachable ({exc}); download {url} "
            f"on a connected machine into {cached}, or pass the .pth file as the detector model"
        ) from exc
    try:
        state: dict[str, torch.Tensor] = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"downloading {url} failed ({exc}); save it as {cached} or pass the .pth file") from exc
    return state


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"torchvision detector weights {path} do not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ModelError(f"{path} is not a readable torch state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
