"""Person detectors behind one ``Detector`` protocol; ``DETECTORS`` names them and ``build_detector`` picks one.

torch is imported only when the torchvision detector is asked for, so the other two start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from reidkit.errors import ConfigError
from reidkit.registry import Registry
from reidkit.video.detectors.hog import HogDetector
from reidkit.video.detectors.openvino_ssd import DETECTOR_ENV_VAR, OpenVinoSsdDetector, default_openvino_model
from reidkit.video.types import Detector

class DetectorBuilder(Protocol):
    def __call__(self, model_path: Path | None, device: str, **options: Any) -> Detector: ...


def _hog(model_path: Path | None, device: str, **options: Any) -> Detector:
    if model_path is not None:
        raise ConfigError("the 'hog' detector has its SVM built in and takes no model path")
    if device.lower() != "cpu":
        raise ConfigError(f"the 'hog' detector runs on the CPU only, not on {device!r}")
    return HogDetector(**options)


def _openvino(model_path: Path | None, device: str, **options: Any) -> Detector:
    path = Path(model_path) if model_path is not None else default_openvino_model()
    return OpenVinoSsdDetector(path, device=device.upper(), **options)


# 1280x720: a 768x576 camera frame runs at its own size, a 1080p one at two thirds.
HIRES_INPUT_PIXELS = 1280 * 720


def _openvino_hires(model_path: Path | None, device: str, **options: Any) -> Detector:
    options.setdefault("max_input_pixels", HIRES_INPUT_PIXELS)
    return _openvino(model_path, device, **options)


def _torchvision(model_path: Path | None, device: str, **options: Any) -> Detector:
    from reidkit.video.detectors.torchvision_det import load_torchvision_detector

    return load_torchvision_detector(weights_path=model_path, device=device, **options)


DETECTORS: Registry[DetectorBuilder] = Registry("detector", ConfigError)
DETECTORS.add("openvino", _openvino, "SSD-style OpenVINO IR / ONNX (default person-detection-retail-0013); fastest on CPU")
DETECTORS.add(
    "openvino-hires", _openvino_hires,
    "the same SSD at the frame's own size (up to 1280x720): ~1.8x the recall on street scenes, ~2x the detection time",
)
DETECTORS.add("hog", _hog, "OpenCV HOG + SVM: needs no model file; finds fewer people, slower")
DETECTORS.add("torchvision", _torchvision, "COCO Faster R-CNN / SSDlite, person class; for a GPU")


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
    return DETECTORS.get(name)(model_path, device, **threshold, **options)


__all__ = [
    "DETECTOR_ENV_VAR",
    "DETECTORS",
    "HIRES_INPUT_PIXELS",
    "Detector",
    "HogDetector",
    "OpenVinoSsdDetector",
    "build_detector",
    "default_openvino_model",
]
