"""reidkit.models: shapes, feature sizes, backbone splits, weights loading and spec round trips."""

from __future__ import annotations

import io
import socket
import tarfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from reidkit.errors import ModelError
from reidkit.models import MODELS, ReidModel, ReidOutputs, build_backbone, build_model
from reidkit.models.backbones import imagenet_weights_file
from reidkit.models.backbones.mobilenetv2 import WEIGHTS_ENV

HEADS = {"mgn": (8, 3), "ide": (1, 0), "trinet": (0, 1), "pcb": (6, 0), "bnneck": (1, 1)}
RESNET_DIMS = {"mgn": 2048, "ide": 2048, "trinet": 128, "pcb": 1536, "bnneck": 2048}
MOBILENET_DIMS = {"mgn": 2048, "ide": 1280, "trinet": 128, "pcb": 1536, "bnneck": 1280}
SIZES = [(384, 128), (256, 128)]


def _check_outputs(
    model: ReidModel, height: int, width: int, batch: int = 2, heads: tuple[int, int] | None = None
) -> None:
    """Train-mode head counts/shapes and the eval-mode feature size; on the meta device only shapes are computed."""
    device = next(model.parameters()).device
    x = torch.randn(batch, 3, height, width, device=device)
    num_logits, num_metric = heads or HEADS[model.spec.name]
    with torch.no_grad():
        model.train()
        out = model(x)
        model.eval()
        feature = model(x)
    assert isinstance(out, ReidOutputs)
    assert len(out.logits) == num_logits and len(out.metric_features) == num_metric
    assert all(t.shape == (batch, model.spec.num_classes) for t in out.logits)
    assert all(t.ndim == 2 and t.shape[0] == batch for t in out.metric_features)
    assert feature.shape == (batch, model.feature_dim)
    if device.type != "meta":
        assert torch.isfinite(feature).all()


# ResNet-50 checks are about shapes only, so they run on the meta device: same code, no arithmetic.
@pytest.mark.parametrize("name", MODELS)
def test_resnet50_models_heads_and_feature_sizes(name: str) -> None:
    with torch.device("meta"):
        model = build_model(name, num_classes=7, backbone="resnet50")
    assert model.feature_dim == RESNET_DIMS[name]
    for height, width in SIZES:
        _check_outputs(model, height, width)


def test_mgn_resnet50_global_branch_is_coarser_than_part_branches() -> None:
    with torch.device("meta"):
        model = build_model("mgn", num_classes=5, backbone="resnet50").eval()
    for (height, width), global_hw, part_hw in zip(SIZES, [(12, 4), (8, 4)], [(24, 8), (16, 8)], strict=True):
        trunk = model.shared(torch.randn(2, 3, height, width, device="meta"))
        assert trunk.shape[1:] == (1024, height // 16, width // 16)  # res_conv4_1 output
        assert model.global_branch(trunk).shape[1:] == (2048, *global_hw)
        for branch in model.part_branches:
            assert branch(trunk).shape[1:] == (2048, *part_hw)
    conv5_1 = [model.global_branch[1][0]] + [b[1][0] for b in model.part_branches]
    assert [(blk.conv2.stride, blk.downsample[0].stride) for blk in conv5_1] == [((2, 2), (2, 2))] + [
        ((1, 1), (1, 1))
    ] * 2


def test_mgn_branches_own_their_weights() -> None:
    model = build_model("mgn", num_classes=5, backbone="mobilenetv2")
    g, p2 = model.global_branch[0].conv[0][0].weight, model.part_branches[0][0].conv[0][0].weight
    assert torch.equal(g, p2) and g.data_ptr() != p2.data_ptr()


@pytest.mark.parametrize("name", MODELS)
def test_mobilenetv2_models_and_spec_round_trip(name: str) -> None:
    model = build_model(name, num_classes=6, backbone="mobilenetv2")
    assert model.feature_dim == MOBILENET_DIMS[name]
    _check_outputs(model, 96, 32, batch=3)
    spec = model.spec
    assert spec.name == name and spec.backbone == "mobilenetv2" and spec.num_classes == 6
    rebuilt = build_model(**asdict(spec))
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.spec == spec
    model.eval()
    rebuilt.eval()
    x = torch.randn(2, 3, 96, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_spec_kwargs_rebuild_as_keywords() -> None:
    model = build_model("pcb", 4, backbone="mobilenetv2", stripes=3, reduction_dim=32)
    spec = model.spec
    rebuilt = build_model(spec.name, spec.num_classes, backbone=spec.backbone, **spec.kwargs)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.feature_dim == model.feature_dim == 96


def test_mobilenetv2_split_points() -> None:
    model = build_model("mgn", num_classes=3, backbone="mobilenetv2").eval()
    with torch.no_grad():
        trunk = model.shared(torch.randn(1, 3, 384, 128))
        assert trunk.shape[1:] == (96, 24, 8)  # end of the stride-16 stage
        assert model.global_branch(trunk).shape[1:] == (1280, 12, 4)
        assert all(b(trunk).shape[1:] == (1280, 24, 8) for b in model.part_branches)


def test_options_are_kept_and_checked() -> None:
    model = build_model("mgn", 4, backbone="mobilenetv2", reduction_dim=64, parts=[2, 4])
    assert model.feature_dim == 64 * (3 + 6)
    _check_outputs(model, 96, 32, heads=(3 + 6, 3))
    assert model.spec.kwargs == {"reduction_dim": 64, "parts": [2, 4], "part_stride": 1, "attributes": None}
    with pytest.raises(ModelError, match="no option reduction"):
        build_model("pcb", 4, backbone="mobilenetv2", reduction=3)
    with pytest.raises(ModelError, match="unknown model 'resnet'"):
        build_model("resnet", 4)
    with pytest.raises(ModelError, match="unknown backbone 'vgg'"):
        build_model("ide", 4, backbone="vgg")
    with pytest.raises(ModelError, match="parts"):
        build_model("mgn", 4, backbone="mobilenetv2", parts=[2, 0])
    with pytest.raises(ModelError, match="last_stride"):
        build_model("bnneck", 4, backbone="mobilenetv2", last_stride=3)
    with pytest.raises(ModelError, match="num_classes"):
        build_model("ide", 0, backbone="mobilenetv2")


def test_parameter_groups_partition_trainable_parameters() -> None:
    model = build_model("bnneck", 5, backbone="mobilenetv2")
    backbone, head = model.parameter_groups()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(backbone) + len(head) == len(trainable)
    assert {id(p) for p in backbone} == {id(p) for p in model.body.parameters()}
    assert model.neck.bias.requires_grad is False and all(p is not model.neck.bias for p in head)


@pytest.mark.parametrize("name", ["mgn", "ide"])
def test_frozen_trunk_layers_keep_weights_and_statistics_through_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 4, backbone="mobilenetv2")
    model.freeze_trunk(4)
    trunk = model.trunk()
    assert len(trunk) == 14
    assert trunk is (model.shared if name == "mgn" else model.body[0])
    frozen = {k: v.clone() for k, v in trunk[:4].state_dict().items()}
    thawed = {k: v.clone() for k, v in trunk[4:].state_dict().items()}
    backbone, head = model.parameter_groups()
    assert not {id(p) for p in trunk[:4].parameters()} & {id(p) for p in backbone + head}
    model.train()
    assert not any(m.training for layer in trunk[:4] for m in layer.modules()) and trunk[4].training
    optimizer = torch.optim.SGD(backbone + head, lr=0.1)
    out = model(torch.randn(4, 3, 64, 32))
    sum(logit.sum() for logit in out.logits).backward()
    optimizer.step()
    for key, value in trunk[:4].state_dict().items():  # weights and BN running statistics alike
        assert torch.equal(value, frozen[key]), key
    assert any(not torch.equal(v, thawed[k]) for k, v in trunk[4:].state_dict().items())
    assert model.state_dict().keys() == build_model(name, 4, backbone="mobilenetv2").state_dict().keys()
    model.eval().train()
    assert not trunk[0].training and trunk[4].training


def test_freezing_more_layers_than_the_trunk_has_is_refused() -> None:
    model = build_model("mgn", 4, backbone="mobilenetv2")
    with pytest.raises(ModelError, match=r"15 trunk layers \(model.freeze_layers\); the mobilenetv2 trunk has 14"):
        model.freeze_trunk(15)
    model.freeze_trunk(14)
    assert not any(p.requires_grad for p in model.shared.parameters())
    assert all(p.requires_grad for p in model.global_branch.parameters())


def test_channels_last_and_autocast() -> None:
    model = build_model("mgn", 5, backbone="mobilenetv2").eval()
    x = torch.randn(2, 3, 96, 32)
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model_cl(x.to(memory_format=torch.channels_last)), reference, rtol=1e-4, atol=1e-4)
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x.to(memory_format=torch.channels_last))
    assert all(torch.isfinite(t.float()).all() for t in out.logits + out.metric_features)


def _real_crop(shared_dir: Path) -> torch.Tensor:
    """One CUHK03 crop from the shared tar, ImageNet-normalised, as a (1, 3, 256, 128) tensor."""
    tar_path = shared_dir / "datasets" / "cuhk03-detected-64x128.tar"
    if not tar_path.is_file():
        pytest.skip(f"{tar_path} is absent")
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar if m.name.endswith(".jpg"))
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((128, 256))
    array = (np.asarray(image, dtype=np.float32) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)[None]


def test_mobilenetv2_shared_imagenet_weights(shared_dir: Path) -> None:
    weights = imagenet_weights_file()
    if weights is None:
        pytest.skip("shared MobileNetV2 weights are absent")
    file_tensors = list(torch.load(weights, map_location="cpu", weights_only=True).values())
    pretrained = build_backbone("mobilenetv2", "imagenet")
    features = nn.Sequential(*pretrained.shared, *pretrained.branch)
    loaded = list(features.state_dict().values())
    assert len(file_tensors) == len(loaded) == 312
    assert all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(file_tensors, loaded, strict=True))
    bns = [m for m in features.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.running_mean.abs().sum() > 0 and not torch.allclose(bn.running_var, torch.ones(1)) for bn in bns)

    random = build_backbone("mobilenetv2", None)
    crop = _real_crop(shared_dir)
    with torch.no_grad():
        f_pre = features.eval()(crop).mean(dim=(2, 3))
        f_rand = nn.Sequential(random.shared, random.branch).eval()(crop).mean(dim=(2, 3))
    assert not torch.allclose(f_pre, f_rand, atol=1e-3)
    # ImageNet MobileNetV2 features are ReLU6-bounded, sparse activations; a random init's are not the same.
    assert 0.0 <= f_pre.min() and f_pre.max() <= 6.0


def test_mobilenetv2_weights_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(ModelError, match=WEIGHTS_ENV):
        build_backbone("mobilenetv2", "imagenet")
    state = torchvision.models.mobilenet_v2().features.state_dict()
    keys = list(state)
    state[keys[6]] = torch.zeros(3, 3)
    wrong_shape = tmp_path / "wrong_shape.pt"
    torch.save(state, wrong_shape)
    with pytest.raises(ModelError, match=f"tensor #6 {keys[6]}"):
        build_backbone("mobilenetv2", wrong_shape)
    too_few = tmp_path / "too_few.pt"
    torch.save(dict(list(state.items())[:10]), too_few)
    with pytest.raises(ModelError, match="holds 10 tensors"):
        build_backbone("mobilenetv2", too_few)
    # A full torchvision MobileNetV2 state dict (with classifier) loads: the classifier is dropped.
    full = torchvision.models.mobilenet_v2()
    full_path = tmp_path / "full.pth"
    torch.save(full.state_dict(), full_path)
    loaded = build_backbone("mobilenetv2", full_path)
    assert torch.equal(loaded.branch[-1][0].weight, full.features[18][0].weight)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_resnet50_imagenet_offline_error_is_fast_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty hub cache and an HTTPS proxy nobody listens on make this machine offline, whatever its network.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("no_proxy", "NO_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        build_model("mgn", 10, backbone="resnet50", pretrained="imagenet")
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "IMAGENET1K_V1" in message and "\n" not in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "internet" in message
    assert "--pretrained PATH" in message


def test_resnet50_weights_from_path(tmp_path: Path) -> None:
    reference = torchvision.models.resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet50", path)
    trunk = nn.Sequential(*backbone.shared, *backbone.branch)
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    loaded = trunk.state_dict()
    assert len(loaded) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(loaded.values(), expected.values(), strict=True))

    with pytest.raises(ModelError, match="missing.nope.pth"):
        build_backbone("resnet50", tmp_path / "missing.nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pth cannot be read"):
        build_backbone("resnet50", garbage)
    renamed = {f"module.{k}": v for k, v in reference.state_dict().items()}
    renamed_path = tmp_path / "renamed.pth"
    torch.save(renamed, renamed_path)
    with pytest.raises(ModelError, match=r"missing keys \['bn1.bias'") as info:
        build_backbone("resnet50", renamed_path)
    assert "unexpected keys ['module.bn1.bias'" in str(info.value)
