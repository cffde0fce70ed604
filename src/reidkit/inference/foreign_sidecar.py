"""The preprocessing of a ReID model from another toolkit, declared in a YAML file beside it.

An ONNX file or OpenVINO IR made elsewhere (torchreid's OSNet exports, Open Model Zoo's
person-reidentification-retail-*) says nothing about how crops must be fed to it, and a wrong guess does not
fail: it gives features that quietly match nobody. So reidkit reads that from a *sidecar*: the model file's
name plus ``.yaml`` (``osnet.onnx`` -> ``osnet.onnx.yaml``, ``model.xml`` -> ``model.xml.yaml``), one file per
model file, so an ONNX and an IR of the same network beside each other can never share a wrong declaration::

    input_size: [256, 128]   # height, width the crop is resized to (bilinear, antialiased)
    colour_order: BGR        # channel order the model takes: RGB or BGR
    scale: 255               # pixel values 0-255 (255) or 0-1 (1)
    mean: [0, 0, 0]          # subtracted per channel, in colour_order and on that scale
    std: [1, 1, 1]           # then divided by, likewise
    input_name: data         # optional where the model has one input
    output_name: descriptor  # optional where the model has one output
    layout: NCHW             # optional, NCHW (default) or NHWC

Fields are checked strictly (an unknown field, a string where a number belongs) because a typo here is exactly
the silent mistake the sidecar exists to prevent; every refusal is one line naming the sidecar and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reidkit.errors import ModelError

SIDECAR_SUFFIX = ".yaml"
REQUIRED = "input_size [height, width], colour_order RGB|BGR, scale 1|255, mean [3 numbers], std [3 numbers]"
OPTIONAL = "input_name, output_name, layout NCHW|NHWC"
EXAMPLE = (
    "{input_size: [256, 128], colour_order: RGB, scale: 1, mean: [0.485, 0.456, 0.406], "
    "std: [0.229, 0.224, 0.225]}"
)

_Size = Annotated[int, Field(strict=True, gt=0)]
_Number = Annotated[float, Field(strict=True)]
_Positive = Annotated[float, Field(strict=True, gt=0)]


class Preprocessing(BaseModel):
    """What a crop goes through before the model sees it; ``mean`` / ``std`` are in ``colour_order`` and on the
    ``scale`` pixel range, as toolkits document them (OpenCV's ``blobFromImage`` convention)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size: tuple[_Size, _Size]
    colour_order: Literal["RGB", "BGR"]
    scale: Literal[1, 255]
    mean: tuple[_Number, _Number, _Number]
    std: tuple[_Positive, _Positive, _Positive]
    input_name: str | None = None
    output_name: str | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"

    def rgb_unit_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``mean`` / ``std`` as reidkit's transforms take them (RGB order, pixels on 0-1): normalising there and
        then scaling is the same affine map, so the crop goes through the very pipeline a reidkit model's does."""
        order = slice(None, None, -1) if self.colour_order == "BGR" else slice(None)
        return (
            tuple(v / self.scale for v in self.mean[order]),
            tuple(v / self.scale for v in self.std[order]),
        )


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + SIDECAR_SUFFIX)


def missing_sidecar(model_path: Path) -> ModelError:
    """The one line a model file without a sidecar (and without reidkit metadata) gets: what to write where."""
    return ModelError(
        f"{model_path}: a model from another toolkit needs its preprocessing declared in {sidecar_path(model_path)} "
        f"(required: {REQUIRED}; optional: {OPTIONAL}), e.g. {EXAMPLE}"
    )


def read_sidecar(model_path: Path) -> Preprocessing:
    """The sidecar of ``model_path``, validated; ``missing_sidecar`` when there is none."""
    path = sidecar_path(model_path)
    if not path.is_file():
        raise missing_sidecar(model_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise ModelError(f"{path}: cannot read the sidecar ({type(exc).__name__}: {reason})") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: the sidecar must be a mapping of fields (required: {REQUIRED}), e.g. {EXAMPLE}")
    try:
        return Preprocessing(**{str(key): value for key, value in raw.items()})
    except ValidationError as exc:
        raise ModelError(f"{path}: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    error: dict[str, Any] = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    name = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown field {name!r} (required: {REQUIRED}; optional: {OPTIONAL})"
    if error["type"] == "missing" and len(error["loc"]) == 1:
        return f"field {name!r} is missing (required: {REQUIRED})"
    return f"field {field}: {error['msg']}, got {error.get('input')!r}"
