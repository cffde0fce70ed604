"""Embedding backends: what runs a ReID network on a preprocessed batch, chosen by name.

A backend turns (model, model card, device, cache key) into a *runner*, a function from an NCHW float batch to the
feature rows. The cache key is a function giving the model id (hashing the weights costs a fraction of a second, so
only backends that cache a compiled model call it), or None for a live model whose weights may still change. Every backend must give the same features as PyTorch to 1e-4, because features made by different
backends share the model id and are compared with each other in a store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from reidkit.errors import ModelError
from reidkit.inference.attributes import CACHE_SUFFIX
from reidkit.inference.onnx_runtime import run_session, session_for_cpu
from reidkit.inference.openvino_runtime import compile_for_cpu
from reidkit.inference.query_ir import QueryRecord
from reidkit.models.model_file import ModelCard
from reidkit.registry import Registry

Runner = Callable[[Tensor], Tensor]


class RunnerFactory(Protocol):
    def __call__(
        self, model: nn.Module, card: ModelCard, device: torch.device, cache_key: Callable[[], str] | None
    ) -> Runner: ...


@dataclass(frozen=True)
class EmbeddingBackend:
    """``snapshots_weights``: the runner holds its own copy of the weights (a compiled model), so a runner for a
    live model, one still training, must be made again when its weights change."""

    make_runner: RunnerFactory
    snapshots_weights: bool


def _torch_runner(
    model: nn.Module, card: ModelCard, device: torch.device, cache_key: Callable[[], str] | None
) -> Runner:
    return lambda batch: model(batch.contiguous(memory_format=torch.channels_last))


def _require_cpu(name: str, device: torch.device) -> None:
    if device.type != "cpu":
        raise ModelError(f"backend {name} runs on the CPU; got device {device} (use --embed-backend torch)")


def _openvino_runner(
    model: nn.Module, card: ModelCard, device: torch.device, cache_key: Callable[[], str] | None
) -> Runner:
    _require_cpu("openvino", device)
    key = None if cache_key is None else cache_key()
    # What lets a search run the cached IR without torch (query_ir): the features are the first feature_dim columns.
    feature_dim = getattr(model, "feature_dim", None)
    record = None if key is None or feature_dim is None else QueryRecord(
        key.removesuffix(CACHE_SUFFIX), card.input_size, card.mean, card.std, int(feature_dim)
    )
    compiled = compile_for_cpu(model, card.input_size, cache_key=key, record=record)
    return lambda batch: torch.from_numpy(compiled(batch.numpy())[0])


def _onnxruntime_runner(
    model: nn.Module, card: ModelCard, device: torch.device, cache_key: Callable[[], str] | None
) -> Runner:
    _require_cpu("onnxruntime", device)
    session = session_for_cpu(model, card, cache_key=None if cache_key is None else cache_key())
    return lambda batch: run_session(session, batch)


EMBEDDING_BACKENDS: Registry[EmbeddingBackend] = Registry("embedding backend", ModelError)
EMBEDDING_BACKENDS.add("torch", EmbeddingBackend(_torch_runner, False), "PyTorch, channels_last; CPU or CUDA")
EMBEDDING_BACKENDS.add(
    "openvino", EmbeddingBackend(_openvino_runner, True), "OpenVINO runtime, float32 on the CPU"
)
EMBEDDING_BACKENDS.add(
    "onnxruntime", EmbeddingBackend(_onnxruntime_runner, True), "ONNX Runtime, float32 on the CPU, from the ONNX export"
)
