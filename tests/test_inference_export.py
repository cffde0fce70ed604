"""``reidkit export`` and the onnxruntime backend: exported files run by their runtimes give PyTorch's features on
real crops of the shared CUHK03 benchmark, carry the model card, take any batch size when asked, and bad options
fail in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reidkit.errors import ConfigError, ModelError
from reidkit.inference import FeatureExtractor
from reidkit.inference.export import export_model, run_exported
from reidkit.inference.onnx_export import read_metadata
from reidkit.models.model_file import model_payload, save_checkpoint

from conftest import scratch_mgn  # tests/ is on sys.path (rootdir conftest)

pytestmark = pytest.mark.slow  # four exports and a conversion: seconds each
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
SIZE = (64, 32)
# float32: the project's backend criterion (tests/test_extractor.py's OpenVINO test), |a - b| <= 1e-4 + 1e-4 |b|:
# a 50-layer network's features (up to ~8 here) differ by ~1.2e-4 between PyTorch's and another runtime's convolution
# kernels even with no graph fusion at all (ONNX Runtime ORT_ENABLE_BASIC), while PyTorch's own channels_last and
# contiguous layouts differ by 3e-5. The L2-normalised rows that a store keeps must agree to 1e-4 outright.
FP32_RTOL = FP32_ATOL = 1e-4
# --fp16 stores the weights as float16: on this untrained network (features up to ~5) the rounding moved a feature
# by up to 2.2% of the largest one (ONNX and OpenVINO alike); each feature's direction stays within cosine 0.999
# (docs/export.md). Bounds: 5% and 0.999.
FP16_RELATIVE, FP16_COSINE = 0.05, 0.999


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, card = scratch_mgn(4, SIZE)
    path = tmp_path_factory.mktemp("export") / "mgn.pt"
    save_checkpoint(path, model_payload(model, card))
    return path


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> FeatureExtractor:
    return FeatureExtractor(checkpoint, batch_size=8)


@pytest.fixture(scope="module")
def crops(cuhk03_dataset) -> list[Path]:  # type: ignore[no-untyped-def]
    """Ten real query crops (different people, both cameras)."""
    return [record.path for record in cuhk03_dataset.query[:: max(1, len(cuhk03_dataset.query) // 10)][:10]]


@pytest.fixture(scope="module")
def batch(reference: FeatureExtractor, crops: list[Path]) -> np.ndarray:
    """The crops preprocessed exactly as FeatureExtractor feeds its model."""
    from reidkit.data import read_image

    return torch.stack([reference.transform(read_image(path)) for path in crops]).numpy()


@pytest.fixture(scope="module")
def exports(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One export per (format, precision): fp32 with a dynamic batch axis, fp16 with batches of 1."""
    out = tmp_path_factory.mktemp("exported")
    made = {}
    for fmt, suffix in (("onnx", ".onnx"), ("openvino", ".xml")):
        made[fmt] = export_model(checkpoint, fmt, out / f"fp32{suffix}", dynamic_batch=True).files[0]
        made[f"{fmt}-fp16"] = export_model(checkpoint, fmt, out / f"fp16{suffix}", fp16=True).files[0]
    return made


def _torch_features(reference: FeatureExtractor, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return reference.model(torch.from_numpy(batch)).numpy()


def assert_same_features(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got, expected, rtol=FP32_RTOL, atol=FP32_ATOL)
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    assert np.abs(unit(got) - unit(expected)).max() <= 1e-4


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_fp32_exports_give_pytorch_features_on_real_crops_at_batch_1_and_5(
    fmt: str, exports: dict[str, Path], reference: FeatureExtractor, batch: np.ndarray
) -> None:
    expected = _torch_features(reference, batch)
    assert np.abs(expected).max() > 0.5 and not np.allclose(expected[0], expected[1], atol=1e-2)  # not degenerate
    for size in (1, 5):
        got = run_exported(exports[fmt], batch[:size])
        assert got.shape == (size, reference.feature_dim)
        assert_same_features(got, expected[:size])
    assert_same_features(run_exported(exports[fmt], batch), expected)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_fp16_exports_are_half_the_size_and_within_the_documented_tolerance(
    fmt: str, exports: dict[str, Path], reference: FeatureExtractor, batch: np.ndarray
) -> None:
    weights = (lambda p: p) if fmt == "onnx" else (lambda p: p.with_suffix(".bin"))
    assert weights(exports[f"{fmt}-fp16"]).stat().st_size < 0.55 * weights(exports[fmt]).stat().st_size
    expected = _torch_features(reference, batch[:1])
    got = run_exported(exports[f"{fmt}-fp16"], batch[:1])
    assert np.abs(got - expected).max() <= FP16_RELATIVE * np.abs(expected).max()
    cosine = float((got * expected).sum() / np.linalg.norm(got) / np.linalg.norm(expected))
    assert cosine >= FP16_COSINE
    assert np.abs(got - expected).max() > 0  # really float16 weights, not a float32 copy


def test_a_fixed_batch_export_takes_batches_of_one_only(exports: dict[str, Path], batch: np.ndarray) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exports["onnx-fp16"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, *SIZE]
    assert isinstance(onnxruntime.InferenceSession(str(exports["onnx"])).get_inputs()[0].shape[0], str)  # symbolic
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"images": batch[:5]})


def test_both_formats_carry_the_model_card(exports: dict[str, Path], reference: FeatureExtractor) -> None:
    import openvino

    expected = {
        "model_id": reference.model_id,
        "input_size": "64x32",
        "feature_dim": str(reference.feature_dim),
        "mean": ",".join(repr(float(v)) for v in reference.card.mean),
        "std": ",".join(repr(float(v)) for v in reference.card.std),
    }
    onnx_meta = read_metadata(exports["onnx"])
    assert {k: onnx_meta[k] for k in expected} == expected and onnx_meta["precision"] == "fp32"
    assert json.loads(onnx_meta["card"]) == reference.card.to_dict()
    assert read_metadata(exports["onnx-fp16"])["precision"] == "fp16"
    model = openvino.Core().read_model(str(exports["openvino"]))
    assert {k: model.get_rt_info(["reidkit", k]).astype(str) for k in expected} == expected


def test_the_onnxruntime_backend_matches_torch_and_reuses_its_cached_export(
    checkpoint: Path, reference: FeatureExtractor, crops: list[Path], reidkit_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reidkit.inference import onnx_runtime

    exports = []
    real = onnx_runtime.onnx_model
    monkeypatch.setattr(onnx_runtime, "onnx_model", lambda *a, **k: exports.append(1) or real(*a, **k))
    expected = reference(crops)
    fast = FeatureExtractor(checkpoint, batch_size=3, backend="onnxruntime")  # batches of 3, 3, 3, 1
    assert fast.model_id == reference.model_id and len(exports) == 1
    assert_same_features(fast(crops), expected)
    cached = onnx_runtime.cached_export_path(reference.model_id, SIZE)
    assert cached.is_file() and str(cached).startswith(str(reidkit_cache))
    assert read_metadata(cached)["model_id"] == reference.model_id
    again = FeatureExtractor(checkpoint, backend="onnxruntime")
    assert len(exports) == 1, "the second extractor exported again instead of reading the cache"
    np.testing.assert_array_equal(again(crops[:4]), fast(crops[:4]))
    cached.write_bytes(b"not onnx")  # a damaged entry is exported again and replaced
    third = FeatureExtractor(checkpoint, backend="onnxruntime")
    np.testing.assert_array_equal(third(crops[:4]), fast(crops[:4]))
    assert len(exports) == 2
    assert read_metadata(cached)["model_id"] == reference.model_id
    with pytest.raises(ModelError, match="backend onnxruntime runs on the CPU"):
        FeatureExtractor(checkpoint, device="cuda", backend="onnxruntime")


def test_bad_export_options_fail_before_the_model_loads(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--format 'tflite': use onnx or openvino"):
        export_model(checkpoint, "tflite", tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=r"--out .*m\.onnx: a openvino export is written as a \.xml file"):
        export_model(checkpoint, "openvino", tmp_path / "m.onnx")
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        export_model(checkpoint, "onnx", folder)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write --out .*file/m\.onnx"):
        export_model(checkpoint, "onnx", blocker / "m.onnx")
    with pytest.raises(ModelError, match="checkpoint not found"):
        export_model(tmp_path / "missing.pt", "onnx", tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.onnx"]  # nothing half-written


def test_the_export_command_writes_and_checks_and_fails_in_one_line(checkpoint: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "reidkit", "export", "--checkpoint", str(checkpoint)]
    done = subprocess.run([*command, "--out", str(tmp_path / "m.xml"), "--format", "openvino", "--dynamic-batch"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "openvino fp32, input 64x32, any batch size, 2048-d features" in done.stdout
    assert "checked: max abs difference from PyTorch" in done.stdout
    assert (tmp_path / "m.xml").is_file() and (tmp_path / "m.bin").is_file()
    bad = subprocess.run([*command, "--out", str(tmp_path / "m.onnx"), "--format", "tensorrt"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: --format 'tensorrt': use onnx or openvino"


@pytest.mark.parametrize("output_size", [(3, 1), (2, 2), (6, 1), (5, 3), (None, 2), 4])
@pytest.mark.parametrize("pool", [torch.nn.AdaptiveMaxPool2d, torch.nn.AdaptiveAvgPool2d])
def test_sliced_adaptive_pools_equal_pytorchs(pool: type[torch.nn.Module], output_size: object) -> None:
    """What the export puts in place of MGN's and PCB's stripe pools (which no exporter translates): the same bins,
    on maps that they divide and on maps they do not; a max is bit-exact, a mean sums in another order."""
    from reidkit.inference.onnx_export import _swap_adaptive_pools

    holder = torch.nn.Sequential(pool(output_size))
    original = pool(output_size)
    assert _swap_adaptive_pools(holder) == 1 and not isinstance(holder[0], pool)
    for height, width in [(16, 8), (24, 8), (7, 5), (12, 6)]:
        x = torch.randn(2, 3, height, width)
        if pool is torch.nn.AdaptiveMaxPool2d:
            assert torch.equal(holder(x), original(x))
        else:
            torch.testing.assert_close(holder(x), original(x), rtol=0, atol=1e-6)
