"""FeatureExtractor: the same crop gives the same feature whatever form it arrives in; bad inputs fail in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.errors import ImageError, ModelError
from reidkit.inference import FeatureExtractor, untrained_model
from reidkit.models.model_file import model_payload, save_checkpoint

from conftest import scratch_mgn  # tests/ is on sys.path (rootdir conftest)

SIZE = (64, 32)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    model, card = scratch_mgn(4, SIZE)
    return FeatureExtractor(model, card=card, batch_size=3)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[np.ndarray]]:
    """Five crops of different sizes saved losslessly, so file, PIL and array forms hold identical pixels."""
    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    paths, arrays = [], []
    for i, (h, w) in enumerate([(128, 64), (100, 40), (64, 32), (200, 90), (128, 64)]):
        array = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        path = folder / f"{i:04d}_c1s1_000000_00.png"
        Image.fromarray(array).save(path)
        paths.append(path)
        arrays.append(array)
    return paths, arrays


def test_paths_pil_and_arrays_give_identical_features(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]]
) -> None:
    paths, arrays = images
    from_paths = extractor(paths)
    from_strings = extractor([str(p) for p in paths])
    from_pil = extractor([Image.fromarray(a) for a in arrays])
    from_arrays = extractor(arrays)
    mixed = extractor([paths[0], Image.fromarray(arrays[1]), arrays[2], str(paths[3]), arrays[4]])
    assert from_paths.dtype == np.float32 and from_paths.shape == (5, extractor.feature_dim)
    for other in (from_strings, from_pil, from_arrays, mixed):
        assert np.array_equal(from_paths, other)
    assert not np.allclose(from_paths[0], from_paths[1])  # distinct crops really give distinct features


def test_features_do_not_depend_on_batching(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]]
) -> None:
    _, arrays = images
    batched = extractor(arrays)
    one_by_one = np.concatenate([extractor([a]) for a in arrays])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_flip_averages_the_mirrored_crop(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]]
) -> None:
    _, arrays = images
    flipping = FeatureExtractor(extractor.model, card=extractor.card, flip=True)
    expected = (extractor(arrays) + extractor([a[:, ::-1] for a in arrays])) / 2
    np.testing.assert_allclose(flipping(arrays), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((128, 64), dtype=np.uint8),
        np.zeros((128, 64, 4), dtype=np.uint8),
        np.zeros((128, 64, 3), dtype=np.float32),
        np.zeros((0, 64, 3), dtype=np.uint8),
        "definitely/missing.jpg",
        12,
    ],
    ids=["grey", "rgba", "float", "empty", "missing-file", "int"],
)
def test_bad_inputs_raise_one_line(extractor: FeatureExtractor, bad: object) -> None:
    good = np.zeros((128, 64, 3), dtype=np.uint8)
    with pytest.raises(ImageError) as info:
        extractor([good, bad])  # type: ignore[list-item]
    assert "\n" not in str(info.value)
    assert "missing.jpg" in str(info.value) or "input #1" in str(info.value)


def test_unreadable_file_in_a_worker_is_one_line(extractor: FeatureExtractor, tmp_path: Path) -> None:
    broken = tmp_path / "0001_c1s1_000000_00.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    good = tmp_path / "0001_c1s1_000001_00.png"
    Image.fromarray(np.zeros((128, 64, 3), dtype=np.uint8)).save(good)
    with_workers = FeatureExtractor(extractor.model, card=extractor.card, workers=1)
    with pytest.raises(ImageError) as info:
        with_workers([good, broken])
    assert str(broken) in str(info.value) and "\n" not in str(info.value)


def test_empty_input_and_live_model_needs_a_card(extractor: FeatureExtractor) -> None:
    assert extractor([]).shape == (0, extractor.feature_dim)
    with pytest.raises(ModelError, match="card"):
        FeatureExtractor(extractor.model)


def test_checkpoint_extractor_matches_and_keeps_a_stable_model_id(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]], tmp_path: Path
) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, model_payload(extractor.model, extractor.card))
    loaded = FeatureExtractor(path, batch_size=extractor.batch_size)
    assert loaded.model_id == extractor.model_id == FeatureExtractor(path).model_id
    assert loaded.feature_dim == extractor.feature_dim and loaded.input_size == SIZE
    assert np.array_equal(loaded(images[1]), extractor(images[1]))


def test_untrained_model_is_reproducible() -> None:
    a, card_a = untrained_model("mgn", "mobilenetv2", *SIZE, pretrained=None)
    b, _ = untrained_model("mgn", "mobilenetv2", *SIZE, pretrained=None)
    assert card_a.backbone_init == "scratch" and card_a.input_size == SIZE
    assert FeatureExtractor(a, card=card_a).model_id == FeatureExtractor(b, card=card_a).model_id


def test_openvino_backend_matches_torch_and_shares_the_model_id(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]]
) -> None:
    pytest.importorskip("openvino")
    fast = FeatureExtractor(extractor.model, card=extractor.card, batch_size=2, flip=True, backend="openvino")
    flipped = FeatureExtractor(extractor.model, card=extractor.card, flip=True)
    assert fast.model_id == extractor.model_id
    np.testing.assert_allclose(fast(images[1]), flipped(images[1]), rtol=1e-4, atol=1e-4)


def test_unknown_or_misplaced_backends_are_refused(extractor: FeatureExtractor) -> None:
    with pytest.raises(ModelError, match="unknown embedding backend 'onnx'; choose one of torch, openvino, onnx"):
        FeatureExtractor(extractor.model, card=extractor.card, backend="onnx")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="backend openvino runs on the CPU"):
        FeatureExtractor(extractor.model, card=extractor.card, device="cuda", backend="openvino")


def test_openvino_conversion_of_a_checkpoint_is_cached_by_model_id(
    extractor: FeatureExtractor, images: tuple[list[Path], list[np.ndarray]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("openvino")
    from reidkit.inference import openvino_runtime

    monkeypatch.setenv(openvino_runtime.CACHE_ENV, str(tmp_path / "cache"))
    conversions = []
    real_convert = openvino_runtime._convert
    monkeypatch.setattr(openvino_runtime, "_convert", lambda *a: conversions.append(1) or real_convert(*a))
    path = tmp_path / "m.pt"
    save_checkpoint(path, model_payload(extractor.model, extractor.card))
    expected = FeatureExtractor(path)(images[1])

    first = FeatureExtractor(path, backend="openvino")
    (xml,) = (tmp_path / "cache" / "openvino").glob(f"*/{first.model_id}-64x32/model.xml")
    second = FeatureExtractor(path, backend="openvino")
    assert len(conversions) == 1, "the second extractor converted again instead of reading the cache"
    np.testing.assert_allclose(second(images[1]), expected, rtol=1e-4, atol=1e-4)  # float32 weights kept
    np.testing.assert_array_equal(second(images[1]), first(images[1]))

    xml.write_text("<not a model")  # a damaged entry is converted again and replaced
    third = FeatureExtractor(path, backend="openvino")
    assert len(conversions) == 2
    np.testing.assert_array_equal(third(images[1]), first(images[1]))
    assert "<not a model" not in xml.read_text()
    assert not [p for p in xml.parent.parent.iterdir() if p.name.startswith(".")], "staging folder left behind"

    FeatureExtractor(extractor.model, card=extractor.card, backend="openvino")(images[1])  # live: never cached
    assert len(conversions) == 3 and len(list(xml.parent.parent.iterdir())) == 1


def test_openvino_follows_a_live_model_whose_weights_change(
    images: tuple[list[Path], list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainer evaluates the model it trains: the converted network must be the current weights, not the first."""
    pytest.importorskip("openvino")
    from reidkit.inference import openvino_runtime

    conversions = []
    real_convert = openvino_runtime._convert
    monkeypatch.setattr(openvino_runtime, "_convert", lambda *a: conversions.append(1) or real_convert(*a))
    model, card = scratch_mgn(4, SIZE)
    fast = FeatureExtractor(model, card=card, backend="openvino")
    reference = FeatureExtractor(model, card=card)
    before = fast(images[1])
    fast(images[1])
    assert len(conversions) == 1, "unchanged weights were converted again"
    with torch.no_grad():
        for parameter in model.global_reductions.parameters():
            parameter.mul_(1.5)
    after = fast(images[1])
    assert len(conversions) == 2
    assert not np.allclose(after, before, atol=1e-3)
    np.testing.assert_allclose(after, reference(images[1]), rtol=1e-4, atol=5e-4)  # features up to ~5


def test_a_frozen_model_is_hashed_once_and_its_openvino_conversion_cached(
    images: tuple[list[Path], list[np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``choose_model``'s untrained baseline: nothing trains it, so its id is hashed once (not before every call,
    a tenth of a second for MGN that a server paid per query) and its OpenVINO model is cached like a checkpoint's."""
    pytest.importorskip("openvino")
    from reidkit.inference import extractor as extractor_module
    from reidkit.inference import openvino_runtime

    monkeypatch.setenv(openvino_runtime.CACHE_ENV, str(tmp_path / "cache"))
    hashes = []
    real_id = extractor_module.model_id
    monkeypatch.setattr(extractor_module, "model_id", lambda *a: hashes.append(1) or real_id(*a))
    model, card = scratch_mgn(4, SIZE)
    frozen = FeatureExtractor(model, card=card, backend="openvino", frozen=True)
    for _ in range(3):
        frozen(images[1])
    assert len(hashes) == 1 and frozen.model_id == real_id(model, card)
    assert list((tmp_path / "cache" / "openvino").glob(f"*/{frozen.model_id}-64x32/model.xml"))
    FeatureExtractor(model, card=card, backend="openvino")(images[1])  # live: hashed before each call
    assert len(hashes) >= 3


_COUNT_FORKS = """
import os
import torch
from reidkit.inference import openvino_runtime

forks = []
os.register_at_fork(before=lambda: forks.append(1))
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
openvino_runtime.compile_for_cpu(model, (32, 16))
print(len(forks))
"""


def test_an_openvino_conversion_forks_no_copy_of_the_process() -> None:
    """OpenVINO's converter sends usage telemetry by forking the whole process from a thread pool, about 11 times a
    conversion; a forked child of a killed ingest was found deadlocked for good, holding the store's lock. Importing
    reidkit turns that off. Run in a fresh interpreter (not CI-marked: the converter skips telemetry under CI=true)."""
    pytest.importorskip("openvino")
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key not in ("CI", "TF_BUILD", "JENKINS_URL")}
    run = subprocess.run([sys.executable, "-c", _COUNT_FORKS], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "0", run.stdout


_SIGNAL_AFTER_TWO_MODELS = """
import gc, signal, subprocess
import numpy as np
from reidkit.inference import FeatureExtractor, untrained_model

model, card = untrained_model("mgn", "mobilenetv2", 64, 32, pretrained=None)
first = FeatureExtractor(model, card=card, backend="openvino")
second = FeatureExtractor(model, card=card, backend="openvino")
first([np.zeros((64, 32, 3), np.uint8)]), second([np.zeros((64, 32, 3), np.uint8)])
del first
gc.collect()
del second  # gone in the order they came
gc.collect()
signal.signal(signal.SIGCHLD, lambda *args: None)  # a Python handler, as torch's DataLoader installs one
print(subprocess.run(["/bin/true"]).returncode)
"""


def test_a_signal_after_two_openvino_models_went_does_not_kill_the_process() -> None:
    """OpenVINO's CPU plugin swaps the thread's signal stack per Core and, with two Cores dropped in the order they
    came, leaves it on freed memory: the next handled signal (here SIGCHLD) killed the process with SIGSEGV and no
    trace (the crashing test worker). reidkit compiles everything on one Core (reidkit.openvino_core)."""
    pytest.importorskip("openvino")
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _SIGNAL_AFTER_TWO_MODELS], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    assert run.stdout.split()[-1] == "0"
