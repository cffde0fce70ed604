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
from reidkit.atomic_file import write_atomic
from reidkit.inference.export_metadata import PREFIX
from reidkit.inference.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_model
from reidkit.inference.openvino_runtime import cache_root
from reidkit.models.model_file import ModelCard, model_id


def onnxruntime_module() -> Any:
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
    path = None if cache_key is None else cached_export_path(cache_key, card.input_size)
    if path is not None and path.is_file():
        try:
            session = cpu_session(str(path))
        except Exception:  # a truncated or foreign file: the cache is only a cache, export again
            session = None
        if session is not None and session.get_modelmeta().custom_metadata_map.get(PREFIX + "model_id") == cache_key:
            return session
    serialized = onnx_model(model, card, cache_key or model_id(model, card), dynamic_batch=True).SerializeToString()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, serialized)
        except OSError:  # a read-only or full cache costs only an export
            pass
    return cpu_session(serialized)


def cpu_session(source: str | bytes) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for a file path or serialized model, threads as the module
    docstring says (what a reidkit export and a model from another toolkit both run with)."""
    ort = onnxruntime_module()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_session(session: Any, batch: torch.Tensor) -> torch.Tensor:
    """Features for one NCHW float32 batch."""
    array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])
