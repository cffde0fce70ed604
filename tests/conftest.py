"""Fixtures shared by every test module: the read-only ../shared folder, the real CUHK03 benchmark and the
pedestrian video in it, and the benchmarks' reference implementations."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from reidkit.data import ReidDataset, load_dataset, prepare_shared_cuhk03, prepare_shared_market1501

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml, whose hash names the virtual environment (a new marker there would
    # rebuild it).
    config.addinivalue_line(
        "markers", "browser: drives Debian's Chromium (make test installs it; make test NO_BROWSER=1 leaves these out)"
    )


@pytest.fixture(scope="session", autouse=True)
def reidkit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenVINO conversion cache in a temporary folder (per xdist worker), not the user's home; the CLI tests'
    subprocesses inherit it."""
    from reidkit.inference.openvino_runtime import CACHE_ENV

    path = tmp_path_factory.mktemp("reidkit-cache")
    os.environ[CACHE_ENV] = str(path)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it are skipped where it is absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent")
    return path


@pytest.fixture(scope="session")
def cuhk03_root(shared_dir: Path) -> Path:
    """The shared CUHK03 benchmark unpacked once into the git-ignored ``<repo>/data/`` (Market-1501 layout)."""
    return _unpacked(shared_dir, "cuhk03-detected-64x128.tar", prepare_shared_cuhk03)


@pytest.fixture(scope="session")
def cuhk03_dataset(cuhk03_root: Path) -> ReidDataset:
    """The shared benchmark loaded through the Market-1501 reader."""
    return load_dataset("market1501", cuhk03_root)


@pytest.fixture(scope="session")
def market_root(shared_dir: Path) -> Path:
    """Market-1501 from the shared tar, unpacked once into the git-ignored ``<repo>/data/``."""
    return _unpacked(shared_dir, "market1501.tar", prepare_shared_market1501)


def _unpacked(shared_dir: Path, tar_name: str, prepare: Callable[[Path, Path], Path]) -> Path:
    """A shared benchmark's root, unpacked into ``<repo>/data/`` by ``prepare``; the test is skipped without it."""
    if not (shared_dir / "datasets" / tar_name).is_file():
        pytest.skip(f"shared benchmark {shared_dir / 'datasets' / tar_name} is absent")
    return prepare(shared_dir, REPO_ROOT / "data")


@pytest.fixture(scope="session")
def vtest_video(shared_dir: Path) -> Path:
    """The shared pedestrian video (768x576, 10 fps, 795 frames)."""
    path = shared_dir / "videos" / "vtest.avi"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` as a module (the benchmarks are not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"reidkit_benchmark_{name}", REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_common() -> ModuleType:
    """``benchmarks/common.py``: the classic reference loops the fast code must match."""
    return _load_benchmark("common")


@pytest.fixture(scope="session")
def bench_search_scale() -> ModuleType:
    """``benchmarks/bench_search_scale.py``: its data generator and re-scoring are tested, not only run."""
    return _load_benchmark("bench_search_scale")


@pytest.fixture(scope="session")
def bench_clustering() -> ModuleType:
    """``benchmarks/bench_clustering.py``: run in-process at toy size."""
    return _load_benchmark("bench_clustering")


def write_jpeg(path: Path, size: tuple[int, int] = (16, 32), seed: int = 0) -> Path:
    """A real (noisy, so it does not compress to nothing) JPEG crop of ``size`` = (width, height)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


def cut_clip(source: Path, target: Path, start: int, count: int) -> Path:
    """Frames ``start`` .. ``start + count - 1`` of ``source`` re-encoded as an MP4 (MPEG-4 part 2) at 10 fps: a
    real video file that a store holding other frames of ``source`` does not have yet."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        video_in = src.streams.video[0]
        out = dst.add_stream("mpeg4", rate=10)
        out.width, out.height, out.pix_fmt, out.bit_rate = video_in.width, video_in.height, "yuv420p", 4_000_000
        for index, frame in enumerate(src.decode(video_in)):
            if index >= start + count:
                break
            if index >= start:
                rgb = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                for packet in out.encode(rgb):
                    dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return target


@pytest.fixture
def jpeg():
    """``jpeg(path, size=(w, h), seed=0)`` writes a real JPEG crop and returns its path."""
    return write_jpeg


def scratch_mgn(num_classes: int, size: tuple[int, int] = (64, 32)):
    """A small MGN-MobileNetV2 from scratch, in eval mode, whose features really depend on the input.

    Freshly initialised BN statistics (mean 0, var 1) shrink each block's input-dependent signal ~10x in eval mode,
    so such a network gives every crop the same feature to 1e-8 and tests comparing features could not fail. BN is
    calibrated here with cumulative statistics of a few random batches, as after training.
    """
    from dataclasses import asdict

    import torch

    from reidkit.data import IMAGENET_MEAN, IMAGENET_STD
    from reidkit.models import build_model
    from reidkit.models.model_file import ModelCard

    torch.manual_seed(0)
    model = build_model("mgn", num_classes, backbone="mobilenetv2", kwargs={"part_stride": 2})
    norms = {m: m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, *size))
    for norm, momentum in norms.items():
        norm.momentum = momentum
    card = ModelCard(asdict(model.spec), size, IMAGENET_MEAN, IMAGENET_STD, backbone_init="scratch")
    return model.eval(), card


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path) -> Path:
    """A person-search store of the shared video's first 60 frames (every 2nd: 30 frames), camera ``cam1`` from
    2024-05-01 09:00, OpenVINO detector, MGN-MobileNetV2 on ImageNet weights; built once per session, read-only
    for the tests that use it."""
    from datetime import datetime

    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    root = tmp_path_factory.mktemp("small-store") / "store"
    detector_xml = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    detector = choose_detector(None, openvino_model=detector_xml)
    model = choose_model("imagenet", None)
    options = IngestOptions("cam1", datetime(2024, 5, 1, 9, 0, 0), every_n=2, end_frame=60, progress=False)
    with Store.open(root, writable=True, create=True) as store:
        report = ingest_video(store, probe_video(vtest_video), options, model.extractor, detector, model.source)
    assert report.detections > 30 and report.tracks >= 3
    return root


@pytest.fixture(scope="session")
def attribute_store(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path, shared_dir: Path) -> Path:
    """The small store's footage (the shared video's first 60 frames, every 2nd, camera ``cam1`` from 09:00) ingested
    with the shipped model, which predicts attributes: a store that holds them; read-only for its tests."""
    from datetime import datetime

    from reidkit.attribute_schema import MARKET1501
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    root = tmp_path_factory.mktemp("attribute-store") / "store"
    detector_xml = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    model = choose_model(None, None)
    assert model.extractor.schema is MARKET1501  # the shipped default has the head
    options = IngestOptions("cam1", datetime(2024, 5, 1, 9, 0, 0), every_n=2, end_frame=60, progress=False)
    with Store.open(root, writable=True, create=True) as store:
        report = ingest_video(store, probe_video(vtest_video), options, model.extractor,
                              choose_detector(None, openvino_model=detector_xml), model.source)
    assert report.tracks >= 3
    return root


@pytest.fixture(scope="session")
def two_camera_store(tmp_path_factory: pytest.TempPathFactory, small_store: Path, vtest_video: Path,
                     shared_dir: Path) -> Path:
    """The small store plus camera ``cam2``: frames 60-100 of the shared video (every 2nd), dated so that they run
    at 09:00:00-09:00:04, the same wall-clock seconds as cam1's first frames. The walkers of cam1 reappear in cam2
    (the video goes on), so a person holds tracks of both cameras at the same time: a move no person can make, which
    identity trajectories must leave out. Not clustered; read-only for the tests that use it (copy it to write)."""
    import shutil
    from datetime import datetime

    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    root = tmp_path_factory.mktemp("two-camera-store") / "store"
    shutil.copytree(small_store, root)
    detector_xml = shared_dir / "models" / "person-detection-retail-0013" / "person-detection-retail-0013.xml"
    detector = choose_detector(None, openvino_model=detector_xml)
    model = choose_model("imagenet", None)
    options = IngestOptions("cam2", datetime(2024, 5, 1, 8, 59, 54), every_n=2, start_frame=60, end_frame=100,
                            progress=False)
    with Store.open(root, writable=True) as store:
        report = ingest_video(store, probe_video(vtest_video), options, model.extractor, detector, model.source)
    assert report.tracks >= 3
    return root


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[..., str]]:
    """``serve(db, settings)`` runs the service on a real uvicorn server on 127.0.0.1 (a free port, bound before
    the server starts) in a thread, and returns its base URL; every server stops when the module is done."""
    import socket
    import threading
    import time

    import uvicorn

    from reidkit.service.app import create_app

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(db: Path, settings: object = None, app: object = None) -> str:
        """``app``: an app the test already made with ``create_app`` (to look at its state), served instead."""
        listener = socket.create_server(("127.0.0.1", 0))
        app = app or create_app(db, settings)  # type: ignore[arg-type]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        running.append((server, thread))
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)
