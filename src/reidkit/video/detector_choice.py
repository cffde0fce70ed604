"""Which person detector ingest, search, the live watcher and the album use: one function, so they always agree.

The default is OpenVINO's person-detection-retail-0013 when its model is found (fast on a CPU), else HOG; a name
(``--detector``) picks any of ``DETECTORS``.
"""

from __future__ import annotations

from pathlib import Path

from reidkit.errors import ModelError
from reidkit.video.detectors import build_detector, default_openvino_model
from reidkit.video.types import Detector


def choose_detector(name: str | None, device: str = "cpu", openvino_model: Path | None = None) -> Detector:
    """The named detector, or the default: OpenVINO when its model is found (fast on CPU), else HOG."""
    name, model_path = detector_source(name, openvino_model)
    # --device names a torch device: only the torchvision detector runs on it (OpenVINO and HOG use the CPU).
    return build_detector(name, model_path=model_path, device=device if name == "torchvision" else "cpu")


def detector_source(name: str | None, openvino_model: Path | None = None) -> tuple[str, Path | None]:
    """``(detector name, OpenVINO model path or None)`` that ``choose_detector`` builds, without building it: the
    default is OpenVINO when its model is found, else HOG. The path is absolute (a distributed ingest's workers may
    run in other folders)."""
    if name is None:
        if openvino_model is not None and openvino_model.is_file():
            name = "openvino"
        else:
            try:
                openvino_model = default_openvino_model()
                name = "openvino"
            except ModelError:
                name = "hog"
    if name != "openvino":
        return name, None
    return name, Path(openvino_model or default_openvino_model()).resolve()
