"""Micro-batching of query embeddings (``service.batching``): a crop's feature is the same alone or in a batch,
concurrent searches through a real server share forward passes and each gets its own answer, one bad crop fails
only its own caller; and ``reidkit serve --embed-backend``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import scratch_mgn  # tests/ is on sys.path (rootdir conftest)

from reidkit.errors import ImageError
from reidkit.inference import FeatureExtractor
from reidkit.service.access import Role, create_token
from reidkit.service.batching import Batcher
from reidkit.service.settings import ServiceSettings
from reidkit.store.rows import normalise_rows
from reidkit.store.writer import Store

REIDKIT = Path(sys.executable).with_name("reidkit")
API = "/api/v1"


def embedding(extractor: FeatureExtractor) -> Callable[[list[np.ndarray]], np.ndarray]:
    """One function per model, as ``Embedder`` makes it: the batcher batches crops for the same function."""
    return lambda batch: normalise_rows(extractor(batch))


def crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size=(int(rng.integers(60, 200)), int(rng.integers(30, 90)), 3), dtype=np.uint8)
            for _ in range(count)]


def concurrently(fn: Callable[[int], object], count: int) -> list[object]:
    """``fn(0..count-1)`` on ``count`` threads released together; results (or exceptions) in order."""
    results: list[object] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_a_crop_gets_the_same_feature_alone_or_batched(backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    model, card = scratch_mgn(4, (64, 32))
    rows = embedding(FeatureExtractor(model, card=card, backend=backend, frozen=True))
    images = crops(8)
    alone = np.stack([rows([image])[0] for image in images])
    batcher = Batcher(gather_s=0.5)  # a long wait for company, so the threads surely meet in a batch
    batched = np.stack(concurrently(lambda i: batcher.embed(rows, images[i]), len(images)))  # type: ignore[arg-type]
    assert batcher.crops == 8 and batcher.forward_passes < 8, "the worker did not batch"
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-5)
    assert not np.allclose(alone[0], alone[1])  # distinct crops, distinct features: the comparison can fail


def test_one_bad_crop_fails_only_its_own_caller() -> None:
    model, card = scratch_mgn(4, (64, 32))
    rows = embedding(FeatureExtractor(model, card=card, frozen=True))
    images: list[np.ndarray] = crops(4)
    images[2] = images[2].astype(np.float32)  # not a uint8 RGB image
    batcher = Batcher(gather_s=0.5)
    results = concurrently(lambda i: batcher.embed(rows, images[i]), len(images))
    assert isinstance(results[2], ImageError) and "is not an HxWx3 uint8 RGB image" in str(results[2])
    for i in (0, 1, 3):
        np.testing.assert_allclose(results[i], rows([images[i]])[0], atol=1e-5)  # type: ignore[arg-type]


def test_a_batch_continues_on_the_hand_off_thread_in_one_call_each_caller_getting_its_own_answer() -> None:
    model, card = scratch_mgn(4, (64, 32))
    rows = embedding(FeatureExtractor(model, card=card, frozen=True))
    images = crops(6)
    store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    batcher: Batcher[str] = Batcher(gather_s=0.5, hand_off=lambda job: store_thread.submit(job, "the store"))

    def then(i: int) -> Callable[[str, np.ndarray], object]:
        def run(context: str, row: np.ndarray) -> object:
            if i == 4:
                raise ValueError("no such camera")
            return context, threading.current_thread().name, row

        return run

    results = concurrently(lambda i: batcher.embed(rows, images[i], then(i)), len(images))
    assert batcher.crops == 6 and batcher.hand_offs == batcher.forward_passes < 6
    assert isinstance(results[4], ValueError) and str(results[4]) == "no such camera"
    for i in (0, 1, 2, 3, 5):
        context, thread, row = results[i]  # type: ignore[misc]
        assert context == "the store" and thread.startswith("store")
        np.testing.assert_allclose(row, rows([images[i]])[0], atol=1e-5)

    store_thread.shutdown()  # a hand-off that cannot run reaches every caller as an error, never a hang
    gone = concurrently(lambda i: batcher.embed(rows, images[i], then(i)), 2)
    assert all(isinstance(error, RuntimeError) and "shutdown" in str(error) for error in gone), gone
    with pytest.raises(ValueError, match="hand_off"):
        Batcher().embed(rows, images[0], then(0))


@pytest.mark.slow
def test_concurrent_searches_through_a_real_server_are_batched_and_each_answered_right(
    small_store: Path, serve: Callable[..., str], tmp_path: Path
) -> None:
    from reidkit.service.app import create_app

    root = tmp_path / "store"  # a copy: these searches must not crowd the shared store's audit log
    shutil.copytree(small_store, root)
    app = create_app(root, ServiceSettings(requests_per_minute=10**6))  # embed_backend auto, the default
    url = serve(root, app=app)
    headers = {"Authorization": f"Bearer {create_token(root, Role.viewer, 'batching')[1]}"}
    with Store.open(root) as store:
        paths = [root / row[0] for row in store.db.execute("SELECT crop_path FROM detections ORDER BY id")]
    photos = [paths[i].read_bytes() for i in np.linspace(0, len(paths) - 1, 8).astype(int)]

    def search(i: int) -> list[tuple[int, int, float]]:
        with httpx.Client(base_url=url, timeout=120) as client:
            found = client.post(f"{API}/search", headers=headers, data={"top_k": "5"},
                                files={"image": (f"q{i}.jpg", photos[i], "image/jpeg")})
        assert found.status_code == 200, found.text
        return [(hit["track_id"], hit["detection_id"], hit["score"]) for hit in found.json()["hits"]]

    alone = [search(i) for i in range(len(photos))]  # one at a time: batches of one
    batcher = app.state.services.embedder.batcher
    passes, embedded = batcher.forward_passes, batcher.crops
    batcher.gather_s = 0.5  # the test's requests arrive over a few ms; make sure they meet
    together = concurrently(search, len(photos))
    assert batcher.crops - embedded == len(photos) and batcher.forward_passes - passes < len(photos)
    for one, other in zip(alone, together, strict=True):
        assert isinstance(other, list) and [hit[:2] for hit in other] == [hit[:2] for hit in one]
        np.testing.assert_allclose([hit[2] for hit in other], [hit[2] for hit in one], atol=1e-5)
    assert len({hits[0][0] for hits in alone}) > 1  # different people asked about: answers are not all the same


@pytest.mark.slow
def test_a_search_after_a_live_reindex_embeds_with_the_new_model(
    small_store: Path, serve: Callable[..., str], tmp_path: Path
) -> None:
    """The server skips checking the store's model before each search (it checks beside the search, on the store
    thread): a reindex while it runs must still give the next photo search the new model's ranking, not an error."""
    from typer.testing import CliRunner

    from reidkit.cli.main import app
    from reidkit.inference import untrained_model
    from reidkit.models.model_file import model_payload, save_checkpoint
    from reidkit.search.search import search_store

    root = Path(shutil.copytree(small_store, tmp_path / "store"))
    model, card = untrained_model("bnneck", "mobilenetv2", 64, 32)  # another model id, 1280-d features
    new_model = tmp_path / "bnneck.pt"
    save_checkpoint(new_model, model_payload(model, card))
    url = serve(root, ServiceSettings(requests_per_minute=10**6, embed_backend="torch"))
    headers = {"Authorization": f"Bearer {create_token(root, Role.viewer, 'reindex')[1]}"}
    with Store.open(root) as store:
        first = int(store.detection_ids()[0])
        photo = store.crop_file(store.detections([first])[first])
    with httpx.Client(base_url=url, timeout=120) as client:
        def search() -> dict[str, object]:
            found = client.post(f"{API}/search", headers=headers, data={"top_k": "5"},
                                files={"image": ("q.jpg", photo.read_bytes(), "image/jpeg")})
            assert found.status_code == 200, found.text
            return found.json()  # type: ignore[no-any-return]

        before = search()
        done = CliRunner().invoke(app, ["reindex", "--db", str(root), "--checkpoint", str(new_model),
                                        "--embed-backend", "torch", "--quiet"])
        assert done.exit_code == 0, done.output
        after = search()
    extractor = FeatureExtractor(new_model, progress=False)
    assert before["model_id"] != after["model_id"] == extractor.model_id
    with Store.open(root) as store:
        expected = search_store(store, normalise_rows(extractor([photo]))[0], top_k=5)
    ranked = [hit["track_id"] for hit in after["hits"]]  # type: ignore[index]
    assert ranked == [hit.track.id for hit in expected.hits]
    scores = [hit["score"] for hit in after["hits"]]  # type: ignore[index]
    np.testing.assert_allclose(scores, [hit.score for hit in expected.hits], atol=1e-4)


def test_serve_refuses_an_unknown_embedding_backend(tmp_path: Path) -> None:
    done = subprocess.run([str(REIDKIT), "serve", "--db", tmp_path, "--embed-backend", "onnx"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stderr == "error: --embed-backend 'onnx': use auto, torch, openvino, onnxruntime\n"
