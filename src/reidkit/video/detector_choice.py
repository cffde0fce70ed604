"""Which person detector ingest, search, the live watcher and the album use: one function, so they always agree.

The default is OpenVINO's person-detection-retail-0013 (shipped with the package) when the OpenVINO runtime is
installed (fast on a CPU), else HOG; a name (``--detector``) picks any of ``DETECTORS``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from reidkit.errors import ModelError
from reidkit.video.detectors import build_detector, default_openvino_model
from reidkit.video.types import Detector

# The detectors that run an OpenVINO model file, whose path is resolved here (and handed to distributed workers).
OPENVINO_DETECTORS = ("openvino", "openvino-hires")


def choose_detector(name: str | None, device: str = "cpu", openvino_model: Path | None = None) -> Detector:
    """The named detector, or the default: OpenVINO when its model is found (fast on CPU), else HOG."""
    name, model_path = detector_source(name, openvino_model)
    # --device names a torch device: only the torchvision detector runs on it (OpenVINO and HOG use the CPU).
    return build_detector(name, model_path=model_path, device=device if name == "torchvision" else "cpu")


def detector_source(name: str | None, openvino_model: Path | None = None) -> tuple[str, Path | None]:
    """``(detector name, OpenVINO model path or None)`` that ``choose_detector`` builds, without building it: the
    default is OpenVINO when its runtime is installed and its model found (the package ships one), else HOG. The
    path is absolute (a distributed ingest's workers may run in other folders)."""
    if name is None and importlib.util.find_spec("openvino") is None:
        name = "hog"  # an install without the [openvino] extra still detects people, as it always has
    if name is None:
        if openvino_model is not None and openvino_model.is_file():
            name = "openvino"
        else:
            try:
                openvino_model = default_openvino_model()
                name = "openvino"
            except ModelError:
                name = "hog"
    if name not in OPENVINO_DETECTORS:
        return name, None
    return name, Path(openvino_model or default_openvino_model()).resolve()
