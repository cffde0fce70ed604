"""Models from other toolkits: an ONNX file or OpenVINO IR made without reidkit's exporter, its preprocessing in a
sidecar, gives the features the same network gives in PyTorch with that preprocessing; a missing or wrong sidecar
is one line naming the file and the field.

The foreign model is built here the way another toolkit would: a plain ``torch.onnx.export`` of a network that takes
BGR pixels on 0-255 with its own mean / std, input ``data`` and output ``embedding`` (not reidkit's names).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.v2 import functional as tvf

from reidkit.errors import ConfigError, ModelError
from reidkit.inference import FeatureExtractor
from reidkit.inference.activation_maps import activation_maps
from reidkit.inference.export import export_model
from reidkit.models.model_file import model_id, model_payload, save_checkpoint

REIDKIT = Path(sys.executable).with_name("reidkit")
SIZE = (64, 32)
MEAN_BGR, STD_BGR = (10.0, 20.0, 30.0), (50.0, 60.0, 70.0)
SIDECAR = (
    "# BGR pixels on 0-255, mean / std in that order and scale\n"
    "input_size: [64, 32]\ncolour_order: BGR\nscale: 255\n"
    "mean: [10, 20, 30]\nstd: [50, 60, 70]\ninput_name: data\noutput_name: embedding\n"
)


class TinyReid(nn.Module):
    """A small convolutional embedder; no batch norm, so random weights already give input-dependent features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 24),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def export_foreign(path: Path, *, fixed_batch: bool = False) -> Path:
    """Export ``TinyReid`` as another toolkit would, with the sidecar beside it."""
    kwargs = {} if fixed_batch else {"dynamic_axes": {"data": {0: "n"}, "embedding": {0: "n"}}}
    torch.onnx.export(TinyReid().eval(), (torch.zeros(1, 3, *SIZE),), str(path), dynamo=False, opset_version=17,
                      input_names=["data"], output_names=["embedding"], **kwargs)
    path.with_name(path.name + ".yaml").write_text(SIDECAR)
    return path


def reference(paths: list[Path], flip: bool = False) -> np.ndarray:
    """The declared preprocessing written out by hand: RGB crop resized as reidkit resizes, channels reversed to
    BGR, kept on 0-255, minus mean, over std (both in BGR order); then the network in PyTorch."""
    batch = []
    for path in paths:
        rgb = tvf.resize(_read_rgb(path), list(SIZE), antialias=True)
        bgr = rgb.flip(0).float()
        batch.append((bgr - torch.tensor(MEAN_BGR).view(3, 1, 1)) / torch.tensor(STD_BGR).view(3, 1, 1))
    x = torch.stack(batch)
    net = TinyReid().eval()
    with torch.no_grad():
        out = net(x)
        if flip:
            out = (out + net(x.flip(-1))) / 2
    return out.numpy()


def _read_rgb(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


@pytest.fixture
def crops(tmp_path: Path, jpeg) -> list[Path]:
    return [jpeg(tmp_path / "crops" / f"{i:04d}_c1s1_000{i}.jpg", size=(20 + 7 * i, 50 + 11 * i), seed=i)
            for i in range(5)]


def to_ir(onnx_path: Path, xml: Path) -> Path:
    """The ONNX file as OpenVINO IR (fixed batch 1, as Open Model Zoo ships its models), with its own sidecar."""
    import openvino

    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    xml.with_name(xml.name + ".yaml").write_text(SIDECAR)
    return xml


@pytest.mark.parametrize("variant", ["onnxruntime", "onnxruntime-fixed-batch", "openvino-onnx", "openvino-ir"])
def test_foreign_features_equal_the_network_run_with_the_declared_preprocessing(
    tmp_path: Path, crops: list[Path], variant: str
) -> None:
    model = export_foreign(tmp_path / "tiny.onnx", fixed_batch=variant in ("onnxruntime-fixed-batch", "openvino-ir"))
    backend = "openvino" if variant.startswith("openvino") else None
    if variant == "openvino-ir":
        model = to_ir(model, tmp_path / "tiny.xml")
    extractor = FeatureExtractor(model, batch_size=2, backend=backend)  # 5 crops: batches of 2, 2 and 1
    assert extractor.feature_dim == 24 and extractor.input_size == SIZE
    features = extractor(crops)
    assert features.dtype == np.float32 and features.shape == (5, 24)
    np.testing.assert_allclose(features, reference(crops), atol=1e-4, rtol=0)
    assert np.abs(features[0] - features[1]).max() > 1e-2  # the crops really give different features
    flipped = FeatureExtractor(model, flip=True, backend=backend)(crops)
    np.testing.assert_allclose(flipped, reference(crops, flip=True), atol=1e-4, rtol=0)


def test_model_id_hashes_the_model_and_the_declared_values_only(tmp_path: Path) -> None:
    model = export_foreign(tmp_path / "tiny.onnx")
    first = FeatureExtractor(model).model_id
    assert FeatureExtractor(model, backend="openvino").model_id == first  # same model, another runtime
    sidecar = model.with_name("tiny.onnx.yaml")
    sidecar.write_text("# reformatted, same values\n" + SIDECAR.replace("[10, 20, 30]", "[10.0, 20.0, 30.0]"))
    assert FeatureExtractor(model).model_id == first
    sidecar.write_text(SIDECAR.replace("[10, 20, 30]", "[11, 20, 30]"))
    assert FeatureExtractor(model).model_id != first


def test_a_missing_sidecar_says_what_to_declare(tmp_path: Path) -> None:
    model = export_foreign(tmp_path / "tiny.onnx")
    model.with_name("tiny.onnx.yaml").unlink()
    with pytest.raises(ModelError) as caught:
        FeatureExtractor(model)
    message = str(caught.value)
    assert "\n" not in message and f"{model}.yaml" in message
    for field in ("input_size", "colour_order", "scale", "mean", "std", "e.g. {input_size: [256, 128]"):
        assert field in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("scale: 255", "scale: 255\ncolor_order: BGR"), "unknown field 'color_order'"),
        (("scale: 255", "scale: '255'"), "field scale"),
        (("colour_order: BGR", "colour_order: bgr"), "field colour_order"),
        (("input_size: [64, 32]", "input_size: [64]"), "field input_size"),
        (("input_size: [64, 32]", "input_size: [128, 64]"), "field 'input_size': 128x64 does not fit input 'data'"),
        (("output_name: embedding", "output_name: features"), "field 'output_name': the model has no 'features'"),
        (("input_name: data", "input_name: images"), "field 'input_name': the model has no 'images'"),
        (("input_name: data", "layout: NHWC"), "field 'layout'"),
        (("std: [50, 60, 70]", "std: [50, 0, 70]"), "field std.1"),
        (("mean: [10, 20, 30]\n", ""), "field 'mean' is missing"),
        (("input_size", "- input_size"), "cannot read the sidecar"),
    ],
)
def test_a_wrong_sidecar_is_one_line_naming_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    model = export_foreign(tmp_path / "tiny.onnx", fixed_batch=True)
    sidecar = model.with_name("tiny.onnx.yaml")
    sidecar.write_text(SIDECAR.replace(*change))
    with pytest.raises(ModelError) as caught:
        FeatureExtractor(model)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(sidecar)) and expected in message, message


def test_what_needs_pytorch_refuses_a_foreign_model_in_one_line(tmp_path: Path, crops: list[Path]) -> None:
    model = export_foreign(tmp_path / "tiny.onnx")
    ir = to_ir(model, tmp_path / "tiny.xml")
    refusals = [
        (lambda: FeatureExtractor(model, backend="torch"), "--embed-backend torch cannot run an ONNX file"),
        (lambda: FeatureExtractor(ir, backend="onnxruntime"), "--embed-backend onnxruntime cannot run an OpenVINO IR"),
        (lambda: FeatureExtractor(model, device="meta"), "runs on the CPU, not on meta; pass --device cpu"),
        (lambda: activation_maps(model, crops), "activation maps read a reidkit model's branch feature maps"),
    ]
    for call, expected in refusals:
        with pytest.raises(ModelError, match=expected.replace(".", r"\.")):
            call()
    with pytest.raises(ConfigError, match="this is already an ONNX / OpenVINO file"):
        export_model(model, "onnx", tmp_path / "again.onnx")
    ir.with_suffix(".bin").unlink()
    with pytest.raises(ModelError, match=r"tiny\.bin are missing"):
        FeatureExtractor(ir)


def test_a_reidkit_export_needs_no_sidecar_and_keeps_the_checkpoint_id(tmp_path: Path, crops: list[Path]) -> None:
    from conftest import scratch_mgn

    model, card = scratch_mgn(num_classes=4)
    checkpoint = tmp_path / "mgn.pt"
    save_checkpoint(checkpoint, model_payload(model, card))
    from_pt = FeatureExtractor(checkpoint)
    assert from_pt.model_id == model_id(model, card)
    expected = from_pt(crops)
    onnx_file = export_model(checkpoint, "onnx", tmp_path / "mgn.onnx", dynamic_batch=True).files[0]
    ir_file = export_model(checkpoint, "openvino", tmp_path / "mgn.xml").files[0]  # batch 1: run crop by crop
    for exported, backend in ((onnx_file, None), (onnx_file, "openvino"), (ir_file, None)):
        extractor = FeatureExtractor(exported, backend=backend)
        assert extractor.model_id == from_pt.model_id and extractor.input_size == card.input_size
        np.testing.assert_allclose(extractor(crops), expected, atol=1e-4, rtol=0)


def run(args: list[object], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=400)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_extract_and_cluster_commands_take_a_foreign_model(tmp_path: Path, crops: list[Path]) -> None:
    from reidkit.evaluation import load_features

    model = export_foreign(tmp_path / "tiny.onnx")
    out = tmp_path / "features.npz"
    done = run(["extract", *crops, "--checkpoint", model, "--out", out, "--device", "cpu", "--workers", "0"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 x 24 features" in done.stdout and FeatureExtractor(model).model_id in done.stdout
    np.testing.assert_allclose(load_features(out).features, reference(crops), atol=1e-4, rtol=0)
    clustered = run(["cluster", *crops, "--crops", "--checkpoint", model, "--out", tmp_path / "people"], tmp_path)
    assert clustered.returncode == 0, clustered.stderr
    result = json.loads((tmp_path / "people" / "clusters.json").read_text())
    assert result["params"]["model"] == str(model) and len(result["items"]) == 5
    model.with_name("tiny.onnx.yaml").unlink()
    missing = tmp_path / "missing.npz"
    line = error_line(run(["extract", *crops, "--checkpoint", model, "--out", missing, "--device", "cpu"], tmp_path))
    assert f"{model}.yaml" in line and "input_size" in line
    assert not missing.exists()


@pytest.mark.slow
def test_a_store_ingested_with_a_foreign_model_is_searched_with_it(tmp_path: Path, vtest_video: Path,
                                                                    serve: Callable[..., str]) -> None:
    """Ingest (OpenVINO runs the .onnx: ``--embed-backend auto``) records the file as the store's model; a search
    with no --checkpoint embeds its query with it (ONNX Runtime), and so does the service (its default backend,
    auto): both find the query's own track first."""
    import httpx

    from reidkit.service.access import Role, create_token
    from reidkit.service.settings import ServiceSettings
    from reidkit.store.writer import Store

    model = export_foreign(tmp_path / "tiny.onnx")
    root = tmp_path / "store"
    ingest = ["ingest", vtest_video, "--camera", "cam1", "--quiet", "--every", "2", "--end-frame", "30",
              "--start-time", "2024-05-01T09:00:00", "--checkpoint", model]
    done = run([*ingest, "--db", root], tmp_path)
    assert done.returncode == 0, done.stderr
    with Store.open(root) as store:
        assert store.model is not None
        assert (store.model.source, store.model.feature_dim) == (str(model.resolve()), 24)
        assert store.model.model_id == FeatureExtractor(model).model_id
        (track_id,) = store.db.execute("SELECT id FROM tracks ORDER BY num_crops DESC LIMIT 1").fetchone()
        crop = root / store.track_detections(track_id)[2].crop_path
    found = run(["search", crop, "--db", root, "--top-k", "3", "--json"], tmp_path)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["track_id"] == track_id
    url = serve(root, ServiceSettings(requests_per_minute=10_000))
    token = create_token(root, Role.viewer, "viewer")[1]
    with httpx.Client(base_url=url, timeout=120) as client:
        served = client.post("/api/v1/search", headers={"Authorization": f"Bearer {token}"}, data={"top_k": "3"},
                             files={"image": (crop.name, crop.read_bytes(), "image/jpeg")})
    assert served.status_code == 200, served.text
    assert served.json()["hits"][0]["track_id"] == track_id

    sidecar = model.with_name("tiny.onnx.yaml")
    sidecar.write_text(SIDECAR.replace("[10, 20, 30]", "[0, 0, 0]"))  # another preprocessing: another model
    assert "holds features of model" in error_line(run(["search", crop, "--db", root], tmp_path))
    for text, expected in ((SIDECAR.replace("embedding", "nope"), "tiny.onnx.yaml: field 'output_name'"),
                           (None, "tiny.onnx.yaml (required: input_size")):
        if text is None:
            sidecar.unlink()
        else:
            sidecar.write_text(text)
        new = tmp_path / "new"
        assert expected in error_line(run([*ingest, "--db", new], tmp_path))
        assert not new.exists()
