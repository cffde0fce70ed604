"""Which ReID model embeds crops, and with which runtime: one function, so ingest, search, the live watcher, the
album, ``reidkit test`` / ``extract`` and the demo always agree (the detector's choice is ``video.detector_choice``).

Order: an explicit ``--checkpoint`` (a model file, a shipped model's name, or ``imagenet``); else the model the
store already holds (so a search needs no flag and never mixes models); else the trained model shipped with the
package (``reidkit.models.zoo.DEFAULT_MODEL``). ``imagenet`` is MGN on MobileNetV2 with ImageNet weights only,
untrained for re-identification: a baseline, whose randomly initialised heads are seeded
(``reidkit.inference.untrained_model``) so that every process builds the same weights and the same ``model_id``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from reidkit.errors import ConfigError, ModelError, StoreError
from reidkit.store.rows import ModelInfo

if TYPE_CHECKING:
    from reidkit.inference import FeatureExtractor

IMAGENET = "imagenet"
# The MobileNetV2 recipes' input (recipes cuhk03_shared_*_mobilenetv2): a third cheaper on CPU than 384x128.
_IMAGENET_INPUT = (256, 128)
# ``--embed-backend auto`` on the CPU: the first of these runtimes that is installed, fastest first for the model
# ingest uses by default (MGN-MobileNetV2; benchmarks/RESULTS.md, "Runtimes": PyTorch eager vs ONNX Runtime vs
# OpenVINO); PyTorch eager when neither is, with NO_RUNTIME_WARNING.
AUTO_CPU_BACKENDS = ("openvino", "onnxruntime")
NO_RUNTIME_WARNING = (
    "neither OpenVINO nor ONNX Runtime is installed: embedding with PyTorch eager, several times slower on a CPU; "
    "pip install 'reidkit[openvino]' or 'reidkit[onnx]'"
)


@dataclass(frozen=True)
class ModelChoice:
    """``source`` is what the store records: an absolute checkpoint path, a shipped model's name or ``imagenet``.
    (FeatureExtractor is
    imported inside ``choose_model``: torch takes seconds to load and ``reidkit --help`` should not wait.)"""

    extractor: FeatureExtractor
    source: str
    warning: str | None


def choose_model(
    checkpoint: str | Path | None,
    held: ModelInfo | None,
    device: str = "cpu",
    batch_size: int = 64,
    backend: str | None = None,
) -> ModelChoice:
    """The extractor for ``checkpoint`` (a path or ``imagenet``), defaulting as the module docstring says.

    ``backend``: a name of ``EMBEDDING_BACKENDS``, or ``auto`` (``resolve_backend``; a CPU without either fast
    runtime says so in the warning). ``device`` (``--device``) is checked first: an unknown one, or CUDA on a
    machine without it, is a ``ConfigError`` naming the option.
    """
    from reidkit.inference import FeatureExtractor, untrained_model
    from reidkit.inference.device import resolve_device

    device = str(resolve_device(device, "--device"))
    slow = backend == "auto" and device == "cpu" and resolve_backend(backend, device) == "torch"
    backend = resolve_backend(backend, device)
    source = model_source(checkpoint, held)
    warning = NO_RUNTIME_WARNING if slow else None
    if source == IMAGENET:
        model, card = untrained_model("mgn", "mobilenetv2", *_IMAGENET_INPUT, pretrained=IMAGENET)
        extractor = FeatureExtractor(
            model, device=device, batch_size=batch_size, card=card, progress=False, backend=backend, frozen=True
        )
        return ModelChoice(extractor, IMAGENET, warning)
    extractor = FeatureExtractor(
        source, device=device, batch_size=batch_size, progress=False, backend=backend,
        attributes=None,  # the attributes too where the model has the head: ingest stores them from the same pass
    )
    return ModelChoice(extractor, source, warning)


class QueryEmbedder(Protocol):
    """Crops (HxWx3 uint8 RGB) -> feature rows: a ``FeatureExtractor`` or a cached IR's ``IrQueryEmbedder``."""

    model_id: str
    feature_dim: int

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class QueryModel:
    """The model that embeds a search's query crop, and its ``source`` as ``ModelChoice`` names it."""

    embedder: QueryEmbedder
    source: str


def choose_query_model(
    checkpoint: str | Path | None, held: ModelInfo | None, device: str = "cpu", backend: str | None = None
) -> QueryModel:
    """The store's model for one query crop, without torch where it can be: when no ``--checkpoint``, device or
    runtime other than OpenVINO's is asked for and the conversion cache holds the IR of the store's model id
    (``query_ir``), that IR; else ``choose_model``'s extractor, run (in that same case, when OpenVINO is installed
    and the store's model is a reidkit model file) by OpenVINO, so that this first search leaves the IR for the next.
    OpenVINO's features equal PyTorch's to 1e-4 (``inference.backends``), as the service's searches show."""
    openvino = importlib.util.find_spec("openvino") is not None
    if checkpoint is None and held is not None and device == "cpu" and backend in (None, "auto", "openvino"):
        source = model_source(None, held)  # a model file gone is refused as choose_model refuses it
        if openvino:
            from reidkit.inference.query_ir import IrQueryEmbedder, find_query_ir

            found = find_query_ir(held.model_id)
            if found is not None:
                return QueryModel(IrQueryEmbedder(*found), source)
    if backend is None and checkpoint is None and device == "cpu" and openvino:
        from reidkit.inference.foreign_model import is_foreign_model

        if not is_foreign_model(model_source(None, held)):  # a foreign file keeps its own runtime
            backend = "openvino"
    choice = choose_model(checkpoint, held, device=device, backend=backend)
    return QueryModel(choice.extractor, choice.source)


def model_source(checkpoint: str | Path | None, held: ModelInfo | None) -> str:
    """Which model ``choose_model`` loads, without loading it: ``imagenet``, a shipped model's name, or a model
    file's absolute path (checked to exist). A distributed ingest decides this once, on the driver, and sends the
    answer to its workers."""
    from reidkit.models.zoo import DEFAULT_MODEL, is_shipped_model

    if checkpoint is None and held is not None:
        if held.source != IMAGENET and not is_shipped_model(held.source) and not Path(held.source).is_file():
            raise StoreError(
                f"the store's features were made by {held.source}, which no longer exists; pass --checkpoint with "
                "that model's new path (features of another model cannot be mixed in)"
            )
        return held.source
    chosen = str(checkpoint) if checkpoint is not None else DEFAULT_MODEL
    if chosen == IMAGENET or is_shipped_model(chosen):
        return chosen
    path = Path(chosen).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"checkpoint {chosen} does not exist; pass --checkpoint PATH, a shipped model's name "
                         "(`reidkit list models`) or imagenet")
    return str(path)


def resolve_backend(backend: str | None, device: str) -> str | None:
    """``auto`` made concrete for ``device``; an unknown name is a ``ConfigError`` naming ``--embed-backend``;
    None (the model's own: PyTorch, or a foreign file's runtime) stays None."""
    from reidkit.inference.backends import EMBEDDING_BACKENDS

    if backend is None:
        return None
    if backend == "auto":
        installed = [name for name in AUTO_CPU_BACKENDS if importlib.util.find_spec(name) is not None]
        return installed[0] if device == "cpu" and installed else "torch"
    if backend not in EMBEDDING_BACKENDS:
        raise ConfigError(f"--embed-backend {backend!r}: use auto, {', '.join(EMBEDDING_BACKENDS)}")
    return backend
