"""A ReID model from another toolkit (an ONNX file or OpenVINO IR), run by its own runtime on the CPU.

``FeatureExtractor`` hands a ``.onnx`` / ``.xml`` path here; everything past the runner (the PIL RGB crop, the
resize and normalisation of ``build_transforms``, flip averaging, float32 rows) is the pipeline a reidkit model
uses, so a store, ``reidkit test`` or the service cannot tell the two apart except by model id. The preprocessing
comes from the file's sidecar (``foreign_sidecar``) or, for a file ``reidkit export`` wrote, from the ``reidkit.*``
metadata it carries; the declaration is checked against the graph itself (input / output names, channel axis,
fixed input size) before anything is embedded, so a wrong sidecar is one line, not a store of useless features.

Runtimes: ONNX Runtime runs ``.onnx`` (its default, OpenVINO where ONNX Runtime is not installed), OpenVINO runs
both ``.onnx`` and ``.xml`` (IR's only runtime), both in float32. PyTorch cannot run either, and neither runtime runs
here on a GPU.

Model id: a hash of the model's bytes (the ``.onnx`` and its external-data files, or the ``.xml`` and ``.bin``)
and the preprocessing as validated (so a reformatted or commented sidecar keeps the id, a changed value does not).
A reidkit export without a sidecar keeps the id of the checkpoint it came from when its weights are float32, as
``reidkit export`` documents: its features are that checkpoint's, to 1e-4.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reidkit.errors import ModelError
from reidkit.inference.foreign_sidecar import Preprocessing, missing_sidecar, read_sidecar, sidecar_path
from reidkit.inference.onnx_export import INPUT_NAME, OUTPUT_NAME, read_metadata
from reidkit.inference.onnx_runtime import cpu_session
from reidkit.inference.openvino_runtime import compile_f32, openvino_module
from reidkit.models.model_file import ModelCard
from reidkit.openvino_core import shared_core

# Suffix -> the runtimes that run it, the one used when no --embed-backend names one first.
RUNTIMES = {".onnx": ("onnxruntime", "openvino"), ".xml": ("openvino",)}
FOREIGN_BACKBONE_INIT = "another toolkit"


def is_foreign_model(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RUNTIMES


@dataclass(frozen=True)
class Port:
    """A graph input or output: its position, its names (an OpenVINO port may have several, or none: a reidkit IR
    export's) and its shape (None: a free axis)."""

    index: int
    names: tuple[str, ...]
    shape: tuple[int | None, ...] | None

    @property
    def label(self) -> str:
        return self.names[0] if self.names else f"#{self.index}"


@dataclass(frozen=True)
class ForeignModel:
    """What ``FeatureExtractor`` needs: a card for its transforms, the runner, the feature size and the id."""

    path: Path
    card: ModelCard
    run: Callable[[Tensor], Tensor]
    feature_dim: int
    model_id: str
    runtime: str


def load_foreign_model(path: Path, backend: str | None, device: torch.device) -> ForeignModel:
    """Open ``path`` with ``backend`` (None: its native runtime), read and check its preprocessing, probe it once."""
    suffix = path.suffix.lower()
    runtime = _runtime(path, backend, device)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise ModelError(f"{path}: its weights {path.with_suffix('.bin')} are missing (an IR is an .xml and a .bin)")
    graph = _OrtGraph(path) if runtime == "onnxruntime" else _OvGraph(path)
    metadata = read_metadata(_needs_onnx(path)) if suffix == ".onnx" else graph.reidkit_metadata()
    if sidecar_path(path).is_file():
        prep, source, identity = read_sidecar(path), sidecar_path(path), None
    elif metadata:
        prep, source = _from_metadata(path, metadata), path
        identity = metadata.get("model_id") if metadata.get("precision") == "fp32" else None
    else:
        raise missing_sidecar(path)
    port, output = _check_against_graph(prep, graph, source)
    fixed_batch = graph.prepare(port, prep)
    run = _runner(graph, port, output, prep, fixed_batch)
    feature_dim = _probe(run, prep, source)
    mean, std = prep.rgb_unit_mean_std()
    card = ModelCard(
        spec={"name": "foreign", "backbone": path.name, "runtime": runtime, **prep.model_dump()},
        input_size=prep.input_size, mean=mean, std=std, backbone_init=FOREIGN_BACKBONE_INIT,  # type: ignore[arg-type]
    )
    return ForeignModel(path, card, run, feature_dim, identity or _model_id(path, prep), runtime)


def _needs_onnx(path: Path) -> Path:
    """``path``, once the onnx package (which reads an ONNX file's metadata and external-data names) is there."""
    if importlib.util.find_spec("onnx") is None:
        raise ModelError(f"{path}: reading an ONNX file needs the onnx package; pip install 'reidkit[onnx]'")
    return path


def _runtime(path: Path, backend: str | None, device: torch.device) -> str:
    """The runtime that runs ``path``: ``backend`` when it can, the file's own for None / ``auto``."""
    allowed = RUNTIMES[path.suffix.lower()]
    kind = "an ONNX file" if path.suffix.lower() == ".onnx" else "an OpenVINO IR"
    if device.type != "cpu":
        raise ModelError(f"{path}: {kind} from another toolkit runs on the CPU, not on {device}; pass --device cpu")
    if backend in (None, "auto"):  # the file's own runtime, else the other one that is installed
        installed = [name for name in allowed if importlib.util.find_spec(name) is not None]
        return (installed or allowed)[0]
    if backend not in allowed:
        raise ModelError(
            f"{path}: --embed-backend {backend} cannot run {kind} (PyTorch runs reidkit .pt models only); use "
            f"--embed-backend {' or '.join(allowed)}, or leave it out"
        )
    return backend


def _from_metadata(path: Path, metadata: dict[str, str]) -> Preprocessing:
    """The preprocessing a ``reidkit export`` file declares (``export_metadata``): RGB, pixels on 0-1."""
    try:
        height, width = (int(v) for v in metadata["input_size"].split("x"))
        mean = tuple(float(v) for v in metadata["mean"].split(","))
        std = tuple(float(v) for v in metadata["std"].split(","))
        return Preprocessing(
            input_size=(height, width), colour_order="RGB", scale=1, mean=mean, std=std,  # type: ignore[arg-type]
        )
    except (KeyError, ValueError) as exc:
        raise ModelError(
            f"{path}: its reidkit metadata is incomplete ({type(exc).__name__}: {exc}); write {sidecar_path(path)}"
        ) from exc


def _pick(ports: list[Port], wanted: str | None, field: str, source: Path, reidkit_name: str) -> Port:
    """The port ``wanted`` names; without a name the only one, or the one a reidkit export names ``reidkit_name``."""
    if wanted is None:
        named = [port for port in ports if reidkit_name in port.names]
        if len(ports) == 1 or named:
            return (named or ports)[0]
        names = ", ".join(port.label for port in ports)
        raise ModelError(f"{source}: field {field!r} is needed: the model has several ({names})")
    for port in ports:
        if wanted in port.names:
            return port
    names = ", ".join(name for port in ports for name in port.names)
    raise ModelError(f"{source}: field {field!r}: the model has no {wanted!r} (it has {names})")


def _check_against_graph(prep: Preprocessing, graph: Any, source: Path) -> tuple[int, int]:
    """The input and output to use (positions), once the declared layout and input size fit the input's shape."""
    port = _pick(graph.inputs(), prep.input_name, "input_name", source, INPUT_NAME)
    output = _pick(graph.outputs(), prep.output_name, "output_name", source, OUTPUT_NAME)
    shape, name = port.shape, port.label
    if shape is None:
        return port.index, output.index
    if len(shape) != 4:
        raise ModelError(f"{source}: input {name!r} has {len(shape)} axes, not 4 (N, C, H, W): not an image model, "
                         "or field 'input_name' names the wrong input")
    if prep.layout == "NCHW":
        channels, height, width = shape[1], shape[2], shape[3]
    else:
        height, width, channels = shape[1], shape[2], shape[3]
    if channels not in (None, 3):
        raise ModelError(f"{source}: field 'layout': {prep.layout} reads {channels} channels from input {name!r} "
                         f"of shape {_shape_text(shape)}; declare the other layout")
    if any(fixed is not None and fixed != wanted for fixed, wanted in zip((height, width), prep.input_size)):
        raise ModelError(f"{source}: field 'input_size': {prep.input_size[0]}x{prep.input_size[1]} does not fit "
                         f"input {name!r} of shape {_shape_text(shape)} (fixed {_shape_text((height, width))})")
    return port.index, output.index


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "x".join("?" if dim is None else str(dim) for dim in shape)


def _runner(graph: Any, port: int, output: int, prep: Preprocessing,
            fixed_batch: int | None) -> Callable[[Tensor], Tensor]:
    """NCHW RGB batch (reidkit's transforms, scaled and normalised already) -> (N, D) float32 feature rows."""
    bgr, nhwc = prep.colour_order == "BGR", prep.layout == "NHWC"

    def run(batch: Tensor) -> Tensor:
        if bgr:
            batch = batch.flip(1)
        if nhwc:
            batch = batch.permute(0, 2, 3, 1)
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        out = _in_batches(lambda a: graph.run(port, output, a), array, fixed_batch)
        return torch.from_numpy(np.ascontiguousarray(out.reshape(len(array), -1), dtype=np.float32))

    return run


def _in_batches(run: Callable[[np.ndarray], np.ndarray], array: np.ndarray, fixed: int | None) -> np.ndarray:
    """``run`` over ``array``; a model with a fixed batch size (Open Model Zoo's take 1) gets chunks of it, the
    last one padded with zeros whose rows are dropped."""
    if fixed is None or fixed == len(array):
        return run(array)
    outs = []
    for start in range(0, len(array), fixed):
        chunk = array[start : start + fixed]
        pad = fixed - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
        outs.append(np.asarray(run(chunk))[: fixed - pad])
    return np.concatenate(outs)


def _probe(run: Callable[[Tensor], Tensor], prep: Preprocessing, source: Path) -> int:
    """Run a blank crop once: the feature size, and a model that fails on the declared input fails here, named."""
    try:
        out = run(torch.zeros(1, 3, *prep.input_size))
    except Exception as exc:  # the runtimes raise their own kinds; the first line is what a user can act on
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ModelError(f"{source}: the model fails on a {prep.input_size[0]}x{prep.input_size[1]} input "
                         f"({type(exc).__name__}: {first}); check fields 'input_size' and 'layout'") from exc
    if out.shape[1] == 0:
        raise ModelError(f"{source}: the model's output is empty; check field 'output_name'")
    return int(out.shape[1])


def _model_id(path: Path, prep: Preprocessing) -> str:
    digest = hashlib.sha256()
    for part in _model_files(path):
        digest.update(part.name.encode())
        with open(part, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    digest.update(prep.model_dump_json().encode())
    return digest.hexdigest()[:16]


def _model_files(path: Path) -> list[Path]:
    """The files whose bytes are the model: an IR's ``.xml`` and ``.bin``; an ONNX file and its external data."""
    if path.suffix.lower() == ".xml":
        return [path, path.with_suffix(".bin")]
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    locations = {
        entry.value
        for tensor in proto.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return [path, *(path.parent / name for name in sorted(locations))]


class _OrtGraph:
    """An ONNX file in an ONNX Runtime session."""

    def __init__(self, path: Path) -> None:
        try:
            self.session = cpu_session(str(path))
        except ModelError:
            raise
        except Exception as exc:  # ONNX Runtime's Fail / InvalidGraph / NoSuchFile
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({type(exc).__name__}: {first})") from exc

    def inputs(self) -> list[Port]:
        return [Port(n, (i.name,), _ort_shape(i.shape)) for n, i in enumerate(self.session.get_inputs())]

    def outputs(self) -> list[Port]:
        return [Port(n, (o.name,), _ort_shape(o.shape)) for n, o in enumerate(self.session.get_outputs())]

    def prepare(self, port: int, prep: Preprocessing) -> int | None:
        """The fixed batch size, if the input has one (ONNX Runtime cannot free it)."""
        shape = self.session.get_inputs()[port].shape
        return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None

    def run(self, port: int, output: int, array: np.ndarray) -> np.ndarray:
        names = self.session.get_inputs()[port].name, self.session.get_outputs()[output].name
        return np.asarray(self.session.run([names[1]], {names[0]: array})[0])


def _ort_shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    return tuple(dim if isinstance(dim, int) and dim > 0 else None for dim in shape)


class _OvGraph:
    """An ONNX file or IR read by OpenVINO, compiled once its input shape is settled (``prepare``)."""

    def __init__(self, path: Path) -> None:
        self.openvino = openvino_module()
        self.core = shared_core()  # never a Core of its own: see reidkit.openvino_core
        try:
            self.model = self.core.read_model(str(path))
        except Exception as exc:  # OpenVINO reports unreadable files as RuntimeError and friends
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise ModelError(f"{path}: OpenVINO cannot read it ({type(exc).__name__}: {first})") from exc
        self.compiled: Any = None

    def inputs(self) -> list[Port]:
        return [_ov_port(index, port) for index, port in enumerate(self.model.inputs)]

    def outputs(self) -> list[Port]:
        return [_ov_port(index, port) for index, port in enumerate(self.model.outputs)]

    def reidkit_metadata(self) -> dict[str, str]:
        """An IR's ``reidkit/<field>`` rt_info (``reidkit export --format openvino``); an ONNX file's metadata is
        read from the file itself, whichever runtime runs it."""
        keys = ("model_id", "input_size", "mean", "std", "feature_dim", "precision")
        return {key: self.model.get_rt_info(["reidkit", key]).astype(str) for key in keys
                if self.model.has_rt_info(["reidkit", key])}

    def prepare(self, port: int, prep: Preprocessing) -> int | None:
        """Free the batch axis and fix the image axes to the declared size, then compile; a model that cannot be
        reshaped keeps its fixed batch, which is then returned."""
        height, width = prep.input_size
        dims = [-1, 3, height, width] if prep.layout == "NCHW" else [-1, height, width, 3]
        try:
            self.model.reshape({port: self.openvino.PartialShape(dims)})
            fixed = None
        except Exception:  # some graphs hard-code their batch; they then run one chunk at a time
            first = self.model.input(port).get_partial_shape()[0]
            fixed = first.get_length() if first.is_static else None
        self.compiled = compile_f32(self.core, self.model)
        return fixed

    def run(self, port: int, output: int, array: np.ndarray) -> np.ndarray:
        return np.asarray(self.compiled({port: array})[self.compiled.output(output)])


def _ov_port(index: int, port: Any) -> Port:
    shape = port.get_partial_shape()
    dims = None if shape.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in shape)
    return Port(index, tuple(sorted(port.get_names())), dims)
