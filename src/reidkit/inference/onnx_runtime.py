"""A ReID network run by ONNX Runtime on the CPU, from its ONNX export (``onnx_export.onnx_model``).

Exporting costs seconds (the dynamo exporter traces the whole network), so a checkpoint's export is kept under
``$REIDKIT_CACHE_DIR/onnx/torch-<version>/<model id>-<H>x<W>.onnx`` beside OpenVINO's converted models, keyed the
same way: the next command with the same checkpoint only loads the file. The cached file is an ordinary export
(dynamic batch, float32, the model card in its metadata), so it can also be copied out and used on its own; one that
cannot be read, or whose metadata names another model, is exported again.

Threads: ONNX Runtime's intra-op pool gets ``torch.get_num_threads()`` threads, the count PyTorch uses here (all
physical cores unless ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` say otherwise), so the same setting governs both
runtimes and a 2-core machine runs 2 threads; the inter-op pool has 1 (a ReID network is one chain of operators).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidkit.errors import ModelError
from reidkit.inference.export_metadata import write_atomic
from reidkit.inference.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_model, read_metadata
from reidkit.inference.openvino_runtime import cache_root
from reidkit.models.model_file import ModelCard, model_id


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(
            f"backend onnxruntime needs ONNX Runtime ({exc}); pip install 'reidkit[onnx]'"
        ) from exc
    return onnxruntime


def cached_export_path(key: str, input_size: tuple[int, int]) -> Path:
    version = re.sub(r"[^\w.-]", "_", torch.__version__)
    return cache_root() / "onnx" / f"torch-{version}" / f"{key}-{input_size[0]}x{input_size[1]}.onnx"


def session_for_cpu(model: nn.Module, card: ModelCard, cache_key: str | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` running ``model`` (eval mode) on the CPU, any batch size.

    With a ``cache_key`` (the model id) the export is read from, or written to, the cache; without one (a live
    model that may still be training) it is exported every time and kept in memory only.
    """
    ort = _onnxruntime()
    source: str | bytes | None = None
    path = None if cache_key is None else cached_export_path(cache_key, card.input_size)
    if path is not None and _is_export_of(path, cache_key):
        source = str(path)
    if source is None:
        proto = onnx_model(model, card, cache_key or model_id(model, card), dynamic_batch=True)
        source = proto.SerializeToString()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, source)
            except OSError:  # a read-only or full cache costs only an export
                pass
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _is_export_of(path: Path, key: str) -> bool:
    """Whether ``path`` is a readable export of the model ``key`` (a damaged or foreign file is replaced)."""
    if not path.is_file():
        return False
    try:
        return read_metadata(path).get("model_id") == key
    except ModelError:
        return False


def run_session(session: Any, batch: torch.Tensor) -> torch.Tensor:
    """Features for one NCHW float32 batch."""
    array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])
