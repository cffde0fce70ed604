"""The 'openvino-hires' detector (retail-0013 reshaped to the frame's own size) on a real campus frame, the
network size it picks, the model shipped in the package, and choosing it by name from the command line."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sysconfig
import sys
from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import ConfigError
from reidkit.store.writer import Store
from reidkit.video import build_detector, iter_frames
from reidkit.video.detectors import DETECTORS, HIRES_INPUT_PIXELS
from reidkit.video.detectors.openvino_ssd import _PACKAGED_MODEL, network_input_size

FRAME_INDEX = 100
REIDKIT = Path(sys.executable).with_name("reidkit")


@pytest.fixture(scope="module")
def street(vtest_video: Path) -> np.ndarray:
    pytest.importorskip("openvino")
    return next(iter(iter_frames(vtest_video, start_frame=FRAME_INDEX, end_frame=FRAME_INDEX + 1,
                                 progress=False))).image


def people(detections: np.ndarray, frame: np.ndarray) -> int:
    """Rows that are well-formed pedestrian boxes: inside the frame, taller than wide, 20-300 px tall (the clip's
    people are 50-200 px tall near the camera and about 25 px at the far end of the square, which hires finds)."""
    height, width = frame.shape[:2]
    assert detections.dtype == np.float32 and detections.shape[1] == 5
    assert np.all(np.diff(detections[:, 4]) <= 0)
    assert np.all(detections[:, :2] >= 0) and np.all(detections[:, 2] <= width) and np.all(detections[:, 3] <= height)
    w, h = detections[:, 2] - detections[:, 0], detections[:, 3] - detections[:, 1]
    upright = (h > w) & (h > 20) & (h < 300)
    assert upright.all(), detections[~upright]
    return len(detections)


def test_hires_finds_more_people_than_the_squeezed_input(street: np.ndarray) -> None:
    squeezed = build_detector("openvino", score_threshold=0.5)
    hires = build_detector("openvino-hires", score_threshold=0.5)
    assert hires.name.endswith(f"@{HIRES_INPUT_PIXELS // 1000}kpx") and hires.name != squeezed.name
    found, found_squeezed = people(hires.detect(street), street), people(squeezed.detect(street), street)
    assert found > found_squeezed >= 3
    assert len(hires.detect(np.zeros_like(street))) == 0
    batch = hires.detect_batch([street, street[::2, ::2].copy()])
    np.testing.assert_allclose(batch[0], hires.detect(street), atol=1e-2)
    assert len(batch[1]) <= found  # a quarter of the pixels never shows more people


@pytest.mark.parametrize(
    ("frame", "expected"),
    [((576, 768), (576, 768)), ((1080, 1920), (704, 1280)), ((240, 320), (224, 320)), ((20, 20), (32, 32))],
)
def test_network_size_keeps_the_aspect_never_upscales_and_stays_under_the_cap(
    frame: tuple[int, int], expected: tuple[int, int]
) -> None:
    size = network_input_size(frame, HIRES_INPUT_PIXELS)
    assert size == expected
    assert size[0] * size[1] <= HIRES_INPUT_PIXELS and size[0] % 32 == 0 and size[1] % 32 == 0


def test_a_too_small_pixel_cap_is_refused_in_one_line() -> None:
    pytest.importorskip("openvino")
    with pytest.raises(ConfigError, match="max_input_pixels must be >= 1024, got 10$"):
        build_detector("openvino-hires", max_input_pixels=10)


def test_the_shipped_model_matches_its_card_and_finds_people(street: np.ndarray) -> None:
    card = (_PACKAGED_MODEL.parent / "MODEL_CARD.md").read_text()
    for path in (_PACKAGED_MODEL, _PACKAGED_MODEL.with_suffix(".bin")):
        recorded = re.search(rf"`{re.escape(path.name)}` \(sha256 ([0-9a-f]{{64}})\)", card)
        assert recorded and hashlib.sha256(path.read_bytes()).hexdigest() == recorded.group(1)
    assert "Apache License" in (_PACKAGED_MODEL.parent / "LICENSE").read_text()
    assert "Apache-2.0" in card or "Apache License 2.0" in card
    shipped = build_detector("openvino-hires", model_path=_PACKAGED_MODEL, score_threshold=0.5)
    assert people(shipped.detect(street), street) >= 3


def test_the_registry_lists_it_and_the_cli_ingests_with_it(vtest_video: Path, tmp_path: Path) -> None:
    assert "openvino-hires" in DETECTORS.names()
    listed = subprocess.run([str(REIDKIT), "list", "detectors"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and any(line.split()[0] == "openvino-hires" for line in listed.stdout.splitlines()[1:])
    store = tmp_path / "store"
    ingest: list[object] = ["ingest", vtest_video, "--camera", "c", "--db", store, "--checkpoint", "imagenet", "--quiet",
              "--every", "10", "--end-frame", "40"]
    done = subprocess.run([str(REIDKIT), *map(str, ingest), "--detector", "openvino-hires"],
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    with Store.open(store) as opened:
        assert [v.detector for v in opened.videos()] == ["openvino:person-detection-retail-0013@921kpx"]
        assert len(opened.detection_ids()) >= 4  # 4 frames of the campus clip, each with people in it
    ingest[ingest.index(store)] = tmp_path / "other"
    wrong = subprocess.run([str(REIDKIT), *map(str, ingest), "--detector", "openvino-high"],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    errors = [line for line in wrong.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "openvino-high" in errors[0] and "openvino-hires" in errors[0]


def test_ingest_and_its_workers_resolve_the_model_file_for_hires_too() -> None:
    """A distributed ingest hands its workers the detector's model path: 'openvino-hires' gets one as 'openvino'
    does, and choose_detector builds the reshaping detector from it."""
    pytest.importorskip("openvino")
    from reidkit.video.detector_choice import choose_detector, detector_source

    name, model = detector_source("openvino-hires")
    assert name == "openvino-hires" and model is not None and model.is_absolute() and model.suffix == ".xml"
    assert detector_source("hog") == ("hog", None)
    assert choose_detector("openvino-hires", openvino_model=model).name.endswith("kpx")


def test_without_the_openvino_runtime_the_default_detector_is_hog(tmp_path: Path) -> None:
    """The package ships the detector's model, but an install without the [openvino] extra cannot run it: the
    default must stay HOG there, as before the model shipped. A real such environment: this one's site-packages
    without the openvino packages, with no site processing."""
    site_packages = Path(sysconfig.get_path("purelib"))
    without = tmp_path / "site-packages"
    without.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith("openvino") and entry.suffix != ".pth":
            (without / entry.name).symlink_to(entry)
    source = Path(__file__).resolve().parents[1] / "src"
    code = ("import importlib.util; from reidkit.video.detector_choice import choose_detector, detector_source; "
            "print(importlib.util.find_spec('openvino'), detector_source(None)[0], choose_detector(None).name)")
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{source}:{without}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "hog", "hog-daimler"]
