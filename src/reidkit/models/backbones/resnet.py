"""torchvision's ResNet-50, cut after res_conv4_1 as MGN prescribes.

MGN (Wang et al., 2018) shares the network up to and including res_conv4_1, i.e. the first bottleneck of
``layer3``; every branch owns the rest of ``layer3`` (res_conv4_2..6) and all of ``layer4`` (res_conv5). The
single-branch baselines reassemble the same two halves, so they are the plain ResNet-50 trunk.

``pretrained="imagenet"`` means torchvision's ``ResNet50_Weights.IMAGENET1K_V1`` (the classic 76.1 % top-1
weights most ReID papers start from), fetched through torchvision's cache; a path loads a local torchvision-style
state dict. The 1000-way ``fc`` layer is never used and its weights are ignored.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from torchvision.models import ResNet50_Weights, resnet50

from reidkit.errors import ModelError
from reidkit.models.backbones.split import Backbone
from reidkit.models.backbones.weights import download_torchvision_weights, load_state_dict_file

RESNET50_CHANNELS = 2048


def resnet50_backbone(pretrained: str | Path | None) -> Backbone:
    """ResNet-50 split at res_conv4_1, randomly initialised or with ImageNet / file weights."""
    net = resnet50()
    if pretrained is not None:
        if str(pretrained) == "imagenet":
            state = download_torchvision_weights(
                ResNet50_Weights.IMAGENET1K_V1, "ResNet-50", "pass --pretrained PATH to a local .pth state dict"
            )
            source = "torchvision ResNet50_Weights.IMAGENET1K_V1"
        else:
            state = load_state_dict_file(Path(pretrained), "ResNet-50")
            source = str(pretrained)
        _load_trunk(net, state, source)
    shared = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3[0])
    branch = nn.Sequential(net.layer3[1:], net.layer4)
    return Backbone(name="resnet50", shared=shared, branch=branch, channels=RESNET50_CHANNELS)


def _load_trunk(net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load every non-``fc`` tensor, refusing anything that is not exactly a torchvision ResNet-50."""
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    given = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    if missing or unexpected:
        raise ModelError(
            f"{source} is not a torchvision ResNet-50 state dict: {len(missing)} missing keys "
            f"{missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]}"
        )
    wrong = [
        f"{k} {tuple(given[k].shape)} != {tuple(v.shape)}" for k, v in expected.items() if v.shape != given[k].shape
    ]
    if wrong:
        raise ModelError(
            f"{source} does not fit ResNet-50: {len(wrong)} tensors have the wrong shape, e.g. {wrong[:3]}"
        )
    net.load_state_dict(given, strict=False)
