"""torchvision's MobileNetV2 ``features``, cut at the end of its stride-16 stage.

The ResNet-50 cut point (inside res_conv4, after its first block) has no exact counterpart: MobileNetV2's
stride-16 stage is ``features[7:14]`` (64 then 96 channels) and its stride-32 stage ``features[14:18]`` plus the
1x1 conv to 1280 channels (``features[18]``). We share ``features[:14]`` (stride 16, 96 channels), so
``features[13]`` plays res_conv4_1, and each branch owns ``features[14:]``, whose first block (``features[14]``,
depthwise stride 2) plays res_conv5_1.

ImageNet weights come from the project's shared MobileNetV2 file (see ``find_shared_weights``), falling back to
torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1`` download. The shared file nests its key names differently from
torchvision, so weights are matched by position and shape, never by name.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from reidkit.errors import ModelError
from reidkit.shared_files import find_shared_file
from reidkit.models.backbones.split import Backbone
from reidkit.models.backbones.weights import download_torchvision_weights, load_state_dict_file

MOBILENETV2_CHANNELS = 1280
SHARED_SPLIT = 14
WEIGHTS_ENV = "REIDKIT_MOBILENETV2_WEIGHTS"
SHARED_WEIGHTS = Path("models") / "imagenet" / "mobilenetv2_imagenet_features.pt"


def mobilenetv2_backbone(pretrained: str | Path | None) -> Backbone:
    """MobileNetV2 features split at stride 16, randomly initialised or with ImageNet / file weights."""
    features = mobilenet_v2().features
    if pretrained is not None:
        path = imagenet_weights_file() if str(pretrained) == "imagenet" else Path(pretrained)
        if path is None:
            state = download_torchvision_weights(
                MobileNet_V2_Weights.IMAGENET1K_V1,
                "MobileNetV2",
                f"set {WEIGHTS_ENV} to a MobileNetV2 weights file, or pass --pretrained PATH to one",
            )
            source = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1"
        else:
            state = load_state_dict_file(path, "MobileNetV2")
            source = str(path)
        features.load_state_dict(map_features_state(state, features.state_dict(), source))
    shared = features[:SHARED_SPLIT]
    branch = features[SHARED_SPLIT:]
    return Backbone(name="mobilenetv2", shared=shared, branch=branch, channels=MOBILENETV2_CHANNELS)


def imagenet_weights_file() -> Path | None:
    """The shared ImageNet MobileNetV2 file (``$REIDKIT_MOBILENETV2_WEIGHTS``, else ``shared/`` beside the
    checkout); None if none exists, so the caller downloads."""
    return find_shared_file(WEIGHTS_ENV, SHARED_WEIGHTS, "the MobileNetV2 weights")


def map_features_state(state: dict[str, Tensor], target: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Rename ``state``'s tensors, in order, to ``target``'s keys, checking every shape.

    A full torchvision MobileNetV2 state dict also carries ``classifier.*``; those are dropped first so both the
    shared features-only file and torchvision's own download map the same way.
    """
    given = [(k, v) for k, v in state.items() if not k.startswith("classifier.")]
    if len(given) != len(target):
        raise ModelError(
            f"{source} holds {len(given)} tensors but MobileNetV2 features need {len(target)}; "
            "pass a torchvision-layout MobileNetV2 (features) state dict"
        )
    mapped: dict[str, Tensor] = {}
    for index, ((name, expected), (given_name, tensor)) in enumerate(zip(target.items(), given, strict=True)):
        if tensor.shape != expected.shape:
            raise ModelError(
                f"{source}: tensor #{index} {given_name} {tuple(tensor.shape)} does not fit MobileNetV2 {name} "
                f"{tuple(expected.shape)}; the file is not a MobileNetV2 features state dict"
            )
        mapped[name] = tensor
    return mapped
