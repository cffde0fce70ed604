"""Person detectors behind one ``Detector`` protocol, and ``build_detector`` to pick one by name.

- ``openvino``: an SSD-style OpenVINO IR / ONNX model (default: person-detection-retail-0013); fastest on CPU.
- ``hog``: OpenCV's HOG + SVM; needs nothing, finds fewer people, slower.
- ``torchvision``: COCO Faster R-CNN / SSDlite (person class), for a GPU or when OpenVINO is unavailable.

torch is imported only when the torchvision detector is asked for, so the other two start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from reidkit.errors import ConfigError
from reidkit.video.detectors.hog import HogDetector
from reidkit.video.detectors.openvino_ssd import DETECTOR_ENV_VAR, OpenVinoSsdDetector, default_openvino_model
from reidkit.video.types import Detector

DetectorName = Literal["hog", "openvino", "torchvision"]
DETECTOR_NAMES: tuple[str, ...] = ("hog", "openvino", "torchvision")


def build_detector(
    name: str,
    model_path: Path | None = None,
    score_threshold: float | None = None,
    device: str = "cpu",
    **options: Any,
) -> Detector:
    """Build the named detector; ``score_threshold=None`` keeps its default, ``options`` go to its constructor
    (e.g. ``window="inria"``, ``resize=0.5`` for HOG; ``arch="ssdlite320_mobilenet_v3_large"`` for torchvision)."""
    threshold = {} if score_threshold is None else {"score_threshold": score_threshold}
    if name == "hog":
        if model_path is not None:
            raise ConfigError("the 'hog' detector has its SVM built in and takes no model path")
        if device.lower() != "cpu":
            raise ConfigError(f"the 'hog' detector runs on the CPU only, not on {device!r}")
        return HogDetector(**threshold, **options)
    if name == "openvino":
        path = Path(model_path) if model_path is not None else default_openvino_model()
        return OpenVinoSsdDetector(path, device=device.upper(), **threshold, **options)
    if name == "torchvision":
        from reidkit.video.detectors.torchvision_det import load_torchvision_detector

        return load_torchvision_detector(weights_path=model_path, device=device, **threshold, **options)
    raise ConfigError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")


__all__ = [
    "DETECTOR_ENV_VAR",
    "DETECTOR_NAMES",
    "Detector",
    "DetectorName",
    "HogDetector",
    "OpenVinoSsdDetector",
    "build_detector",
    "default_openvino_model",
]
