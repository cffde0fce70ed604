"""Person detectors on a real campus frame and a blank one, plus the ways building one can fail."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import ConfigError, ModelError
from reidkit.video import build_detector, default_openvino_model, iter_frames
from reidkit.video.detectors import DETECTOR_ENV_VAR

FRAME_INDEX = 100


@pytest.fixture(scope="module")
def street(shared_dir: Path) -> np.ndarray:
    path = shared_dir / "videos" / "vtest.avi"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return next(iter(iter_frames(path, start_frame=FRAME_INDEX, end_frame=FRAME_INDEX + 1, progress=False))).image


@pytest.fixture(scope="module")
def openvino_model(shared_dir: Path) -> Path:
    pytest.importorskip("openvino")
    path = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def assert_well_formed(detections: np.ndarray, frame: np.ndarray) -> None:
    height, width = frame.shape[:2]
    assert detections.dtype == np.float32 and detections.ndim == 2 and detections.shape[1] == 5
    assert np.all(np.diff(detections[:, 4]) <= 0), "scores must be sorted in descending order"
    assert np.all(detections[:, 0] >= 0) and np.all(detections[:, 1] >= 0)
    assert np.all(detections[:, 2] <= width) and np.all(detections[:, 3] <= height)
    assert np.all(detections[:, 2] > detections[:, 0]) and np.all(detections[:, 3] > detections[:, 1])


def upright_people(detections: np.ndarray) -> np.ndarray:
    """Pedestrians' boxes are taller than wide; the campus clip's people are 50-200 px tall."""
    w = detections[:, 2] - detections[:, 0]
    h = detections[:, 3] - detections[:, 1]
    return (h > w) & (h > 40) & (h < 300)


def test_hog_finds_people_and_not_on_a_blank_frame(street: np.ndarray) -> None:
    detector = build_detector("hog", score_threshold=0.5)
    detections = detector.detect(street)
    assert_well_formed(detections, street)
    assert 3 <= len(detections) <= 25
    assert upright_people(detections).mean() >= 0.8
    assert len(detector.detect(np.zeros_like(street))) == 0
    assert len(detector.detect(np.full_like(street, 200))) == 0


def test_hog_downscaled_is_a_valid_faster_variant(street: np.ndarray) -> None:
    detections = build_detector("hog", resize=0.5, window="inria").detect(street)
    assert_well_formed(detections, street)
    assert len(detections) <= 10  # the INRIA window at half size is blind to small people, never noisier


def test_openvino_finds_people_and_not_on_a_blank_frame(street: np.ndarray, openvino_model: Path) -> None:
    detector = build_detector("openvino", model_path=openvino_model, score_threshold=0.5)
    detections = detector.detect(street)
    assert_well_formed(detections, street)
    assert 3 <= len(detections) <= 25
    assert upright_people(detections).all()
    assert len(detector.detect(np.zeros_like(street))) == 0
    batch = detector.detect_batch([street, np.zeros_like(street), street[::2, ::2].copy()])
    np.testing.assert_allclose(batch[0], detections, atol=1e-2)
    assert len(batch[1]) == 0
    assert_well_formed(batch[2], street[::2, ::2])


def test_openvino_default_model_from_environment(
    openvino_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DETECTOR_ENV_VAR, str(openvino_model))
    assert default_openvino_model() == openvino_model
    monkeypatch.setenv(DETECTOR_ENV_VAR, str(tmp_path / "missing.xml"))
    with pytest.raises(ModelError, match=DETECTOR_ENV_VAR):
        build_detector("openvino")


def test_openvino_rejects_a_broken_model_or_device(openvino_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        build_detector("openvino", model_path=tmp_path / "absent.xml")
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(openvino_model.read_bytes())
    with pytest.raises(ModelError, match="lonely.bin"):
        build_detector("openvino", model_path=lonely)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 64)
    with pytest.raises(ModelError, match="garbage.onnx"):
        build_detector("openvino", model_path=garbage)
    with pytest.raises(ConfigError, match="CUDA"):
        build_detector("openvino", model_path=openvino_model, device="cuda")


def test_unknown_detector_and_misplaced_options() -> None:
    with pytest.raises(ConfigError, match="yolo"):
        build_detector("yolo")
    with pytest.raises(ConfigError, match="model path"):
        build_detector("hog", model_path=Path("x.xml"))
    with pytest.raises(ConfigError, match="resize"):
        build_detector("hog", resize=0.0)


def test_torchvision_wiring_returns_person_rows(street: np.ndarray) -> None:
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    from reidkit.video.detectors.torchvision_det import TorchvisionDetector

    # untrained and with only background + person (label 1, as in COCO), so some person rows must come out
    untrained = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2)
    detector = TorchvisionDetector(untrained, score_threshold=0.0)
    small = street[:300, :200].copy()
    batch = detector.detect_batch([street, small])
    assert len(batch) == 2
    for detections, image in zip(batch, [street, small], strict=True):
        assert_well_formed(detections, image)
    assert len(batch[0]) > 0


def test_torchvision_weights_file_is_loaded_or_rejected(tmp_path: Path) -> None:
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    coco = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    detector = build_detector("torchvision", model_path=tmp_path / "coco.pth")
    assert detector.name == "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"
    for name, tensor in detector.model.state_dict().items():  # type: ignore[attr-defined]
        assert torch.equal(tensor, coco.state_dict()[name]), name

    headless = {name: tensor for name, tensor in coco.state_dict().items() if not name.startswith("roi_heads.")}
    torch.save(headless, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="other.pth"):
        build_detector("torchvision", model_path=tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"definitely not a pickle")
    with pytest.raises(ModelError, match="junk.pth"):
        build_detector("torchvision", model_path=tmp_path / "junk.pth")


def test_torchvision_offline_fails_fast_with_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=2).close()
        pytest.skip("download.pytorch.org is reachable here; the offline path cannot be exercised")
    except OSError:
        pass
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache
    started = time.monotonic()
    with pytest.raises(ModelError) as caught:
        build_detector("torchvision")
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert "fasterrcnn_mobilenet_v3_large_320_fpn" in message and str(tmp_path) in message
