"""A reidkit model as an ONNX file that describes itself: the graph plus the model card in ``metadata_props``.

Exporter: torch 2.14's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, opset 17). Both of its
exporters refuse MGN as it is: neither translates ``adaptive_max_pool2d`` whose output size does not divide the
input (MGN's 3 stripes over a 16-row map). ``_swap_adaptive_pools`` replaces such pools, in a copy of the model, by
the same bins written as slices and max / mean (the bin bounds are fixed by the input size: a max is bit-exact, a
mean equal to float32 rounding). After that both exporters work, and for our models they write the same graph (86 Conv, 53 Clip, 14 Add for
MGN-MobileNetV2), the same features (to 1e-6) and run equally fast in ONNX Runtime; but the dynamo exporter
(torch.export + onnxscript) took 7x as long to export (12 s against 1.7 s for MGN-MobileNetV2 at 256x128, most of
it in decompositions over the symbolic batch axis), and the onnxruntime backend exports on the first use of every
checkpoint. The TorchScript exporter is deprecated upstream; switching is the ``dynamo=`` argument of
``onnx_model`` (docs/export.md).

The file carries everything a runtime needs to feed it as ``metadata_props`` ``reidkit.<field>``, the fields of
``export_metadata.export_metadata`` (model id, input size, mean / std, feature size, precision, the card as JSON).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from reidkit.errors import ModelError
from reidkit.atomic_file import write_atomic
from reidkit.inference.export_metadata import PREFIX, export_metadata
from reidkit.models.model_file import ModelCard

INPUT_NAME, OUTPUT_NAME = "images", "features"
OPSET = 17


class _SlicedAdaptivePool(nn.Module):
    """``nn.AdaptiveMax/AvgPool2d`` as slices: bin ``i`` of ``n`` over ``size`` rows spans
    ``[floor(i * size / n), ceil((i + 1) * size / n))``, exactly PyTorch's rule: a max pool's output is identical, a
    mean pool's equal to float32 rounding (another summation order)."""

    def __init__(self, output_size: tuple[int | None, int | None], reduce: str) -> None:
        super().__init__()
        self.output_size, self.reduce = output_size, reduce

    def forward(self, x: Tensor) -> Tensor:
        height, width = int(x.shape[-2]), int(x.shape[-1])
        out_h, out_w = (height if self.output_size[0] is None else self.output_size[0],
                        width if self.output_size[1] is None else self.output_size[1])
        rows = []
        for i in range(out_h):
            top, bottom = (i * height) // out_h, -(-(i + 1) * height // out_h)
            cells = []
            for j in range(out_w):
                left, right = (j * width) // out_w, -(-(j + 1) * width // out_w)
                cell = x[:, :, top:bottom, left:right]
                cells.append(cell.amax(dim=(2, 3), keepdim=True) if self.reduce == "max" else
                             cell.mean(dim=(2, 3), keepdim=True))
            rows.append(torch.cat(cells, dim=3) if len(cells) > 1 else cells[0])
        return torch.cat(rows, dim=2) if len(rows) > 1 else rows[0]


def _pair(size: Any) -> tuple[int | None, int | None]:
    return (size, size) if size is None or isinstance(size, int) else (size[0], size[1])


def _swap_adaptive_pools(model: nn.Module) -> int:
    """Replace, in place, every adaptive pool with a non-global output by ``_SlicedAdaptivePool``; the count."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveMaxPool2d | nn.AdaptiveAvgPool2d) and _pair(child.output_size) != (1, 1):
                reduce = "max" if isinstance(child, nn.AdaptiveMaxPool2d) else "mean"
                setattr(parent, name, _SlicedAdaptivePool(_pair(child.output_size), reduce))
                swapped += 1
    return swapped


def read_metadata(path: Path) -> dict[str, str]:
    """The ``reidkit.*`` metadata of an ONNX file, prefix removed."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelError(f"{path}: not an ONNX file ({type(exc).__name__})") from exc
    return {p.key[len(PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}


def onnx_model(
    model: nn.Module, card: ModelCard, model_id: str, *, dynamic_batch: bool = True, fp16: bool = False
) -> Any:
    """``model`` as an ``onnx.ModelProto`` carrying the card (the model itself is left as it was).

    ``dynamic_batch``: the batch axis is free (any batch size), else fixed at 1. ``fp16``: weights stored as
    float16, computed in float32 (``_compress_weights_to_fp16``).
    """
    import copy

    try:
        import onnx
    except ImportError as exc:
        raise ModelError(f"ONNX export needs the onnx package ({exc}); pip install 'reidkit[onnx]'") from exc
    exportable = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format).eval()
    _swap_adaptive_pools(exportable)
    example = torch.zeros(2 if dynamic_batch else 1, 3, *card.input_size)
    dynamic = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                exportable, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_axes=dynamic, do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many kinds; one line with the reason is what a user can act on
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelError(f"cannot export {type(model).__name__} to ONNX ({type(exc).__name__}: {first})") from exc
    proto = onnx.load_from_string(buffer.getvalue())
    if fp16:
        proto = _compress_weights_to_fp16(proto)
    feature_dim = int(getattr(model, "feature_dim", 0))
    for key, value in export_metadata(card, model_id, feature_dim, "fp16" if fp16 else "fp32").items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = PREFIX + key, value
    return proto


def export_onnx(model: nn.Module, card: ModelCard, model_id: str, path: Path, **options: bool) -> Path:
    """Write ``onnx_model(model, card, model_id, **options)`` to ``path`` atomically, checked by ``onnx.checker``."""
    import onnx

    proto = onnx_model(model, card, model_id, **options)
    onnx.checker.check_model(proto)
    write_atomic(path, proto.SerializeToString())
    return path


def _compress_weights_to_fp16(proto: Any) -> Any:
    """Store every float32 weight tensor as float16 followed by a Cast back to float32 (what OpenVINO's
    ``compress_to_fp16`` does): half the file, computed in float32, so the only error is the weights' rounding.

    A whole-float16 graph (``onnxruntime.transformers.float16``) was measured too: ONNX Runtime has no float16
    convolutions on x86 CPUs and ran it 3x slower than float32, its features 3% off (docs/export.md).
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    initializers, casts = [], []
    for tensor in graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and len(tensor.dims) > 1:  # weight tensors, not scalars / shapes
            half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype("float16"), f"{tensor.name}__fp16")
            initializers.append(half)
            casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT))
        else:
            initializers.append(tensor)
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(initializers)
    graph.node.extend(nodes)
    return proto


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The TorchScript exporter warns that it is deprecated and that traced shapes become constants (the input
    size is fixed by the card on purpose): nothing a user acts on."""
    import logging

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
