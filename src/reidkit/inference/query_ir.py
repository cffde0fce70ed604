"""A query crop embedded by a store's model without PyTorch: the OpenVINO IR that the model's OpenVINO runs keep in
the conversion cache, found by the model's id, fed by ``build_transforms(train=False)``'s preprocessing redone in
PIL and NumPy.

Why: ``reidkit search PHOTO`` embeds one crop, and importing torch and torchvision to do it was more than half of
the command (2.3 of 4 s on two cores; benchmarks/RESULTS.md, "reidkit search from the command line"). Every OpenVINO
run of a model file (``reidkit ingest`` with its default ``--embed-backend auto``, the service, a search) converts
it once and caches the IR under ``$REIDKIT_CACHE_DIR/openvino/<version>/<model id>[+attributes]-<H>x<W>/``; beside
it ``QUERY_RECORD`` says what a runner needs that the IR does not: the model id, input size, mean / std and feature
size. A search then reads that folder and compiles it: no torch, no conversion. A cached network with the attribute
head serves as well: its first ``feature_dim`` output columns are exactly the model's feature
(``inference.attributes``).

The preprocessing is torchvision's ``Resize(antialias=True)`` of the uint8 image redone to the bit
(``resize_uint8``), then ``ToDtype(scale=True)`` and ``Normalize``: features equal the torch path's to ~1e-6, and a
search prints the same hits and scores (tests/test_query_ir.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.atomic_file import write_atomic
from reidkit.openvino_core import shared_core

CACHE_ENV = "REIDKIT_CACHE_DIR"
QUERY_RECORD = "reidkit-query.json"


def cache_root() -> Path:
    """``$REIDKIT_CACHE_DIR``, default ``~/.cache/reidkit``: converted models, keyed by model id."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "reidkit")


def openvino_cache_folder(openvino_version: str) -> Path:
    """Where this OpenVINO version's converted models are cached (a converted model is read by its own version)."""
    version = re.sub(r"[^\w.-]", "_", openvino_version)  # e.g. "2026.4.1-22982-e213a147257-releases/2026/4"
    return cache_root() / "openvino" / version


@dataclass(frozen=True)
class QueryRecord:
    """What feeds a cached IR: ``model_id`` of the model file (without the attributes suffix), the input size, the
    RGB mean / std on 0-1 pixels, and the feature size (the output's first columns)."""

    model_id: str
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int

    def to_json(self) -> str:
        return json.dumps({"model_id": self.model_id, "input_size": list(self.input_size), "mean": list(self.mean),
                           "std": list(self.std), "feature_dim": self.feature_dim}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QueryRecord:
        raw = json.loads(text)
        return cls(str(raw["model_id"]), (int(raw["input_size"][0]), int(raw["input_size"][1])),
                   tuple(float(v) for v in raw["mean"]), tuple(float(v) for v in raw["std"]),  # type: ignore[arg-type]
                   int(raw["feature_dim"]))


def write_query_record(folder: Path, record: QueryRecord) -> None:
    """Put ``record`` beside a cached IR once (atomically); a cache that cannot be written costs only speed."""
    path = folder / QUERY_RECORD
    if path.is_file() or not folder.is_dir():
        return
    try:
        write_atomic(path, record.to_json().encode())
    except OSError:
        pass


def find_query_ir(model_id: str) -> tuple[Path, QueryRecord] | None:
    """The cached IR (``model.xml``) of ``model_id`` and its record, or None when there is none or it cannot be
    read; the plain network is preferred to one with the attribute head (a smaller output)."""
    import openvino

    folder = openvino_cache_folder(openvino.__version__)
    for suffix in ("-", "+"):  # "<id>-HxW" (features only) before "<id>+attributes-HxW"
        for candidate in sorted(folder.glob(f"{glob_escape(model_id)}{suffix}*/{QUERY_RECORD}")):
            try:
                record = QueryRecord.from_json(candidate.read_text())
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue
            xml = candidate.parent / "model.xml"
            if record.model_id == model_id and xml.is_file() and xml.with_suffix(".bin").is_file():
                return xml, record
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def compile_f32(core: Any, model: Any) -> Any:
    """``model`` compiled for the CPU in float32 (a reidkit network or a model from another toolkit)."""
    # float32 inference: on CPUs with AMX / AVX-512 BF16 OpenVINO otherwise defaults to bf16, whose features drift
    # ~1e-3 from PyTorch's, and OpenVINO-made gallery features must stay comparable with PyTorch-made queries.
    return core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})


class IrQueryEmbedder:
    """Crops (HxWx3 uint8 RGB) -> feature rows (N, feature_dim) float32, as ``FeatureExtractor`` gives them for
    the same model without flip averaging; ``model_id`` and ``feature_dim`` as the extractor's."""

    def __init__(self, xml: Path, record: QueryRecord) -> None:
        core = shared_core()
        self._compiled: Any = compile_f32(core, core.read_model(str(xml)))
        self.record = record
        self.model_id, self.feature_dim = record.model_id, record.feature_dim

    def __call__(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        batch = np.stack([preprocess(crop, self.record) for crop in crops])
        rows = np.asarray(self._compiled(batch)[0], dtype=np.float32)
        return np.ascontiguousarray(rows[:, : self.feature_dim])


def preprocess(crop: np.ndarray, record: QueryRecord) -> np.ndarray:
    """``build_transforms(train=False)`` of an HxWx3 uint8 RGB crop, as a (3, H, W) float32 array, to the bit:
    torchvision's uint8 ``Resize(antialias=True)`` (``resize_uint8``), ``ToDtype(scale=True)``, ``Normalize``."""
    height, width = record.input_size
    pixels = resize_uint8(np.asarray(crop), height, width).astype(np.float32) * np.float32(1.0 / 255.0)
    mean, std = np.asarray(record.mean, dtype=np.float32), np.asarray(record.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An HxWxC uint8 image resized as PyTorch resizes uint8 with bilinear antialiasing on the CPU (what
    torchvision's ``Resize`` does to an image from PIL): Pillow's separable triangle filter, widths first, each pass
    in integers with int16 weights scaled to the widest precision that fits, rounded back to uint8. Pillow's own
    resize scales its weights by 2**22 and so differs by one grey level in about one pixel in 150, which moved
    printed scores by 0.001 (tests/test_query_ir.py holds the two equal)."""
    resized = _resize_axis(image, width, axis=1)
    return _resize_axis(resized, height, axis=0)


def _resize_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    if image.shape[axis] == size:
        return image
    weights, precision = _axis_weights(image.shape[axis], size)
    rows = np.tensordot(weights, np.moveaxis(image, axis, 0).astype(np.int64), axes=(1, 0))
    rows = np.clip((rows + (1 << (precision - 1))) >> precision, 0, 255).astype(np.uint8)
    return np.moveaxis(rows, 0, axis)


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, int]:
    """The (out, in) integer weights of one axis and their precision in bits, computed as ATen's
    ``compute_index_ranges_int16_weights`` does (align_corners False, the scale in / out)."""
    scale = in_size / out_size
    support, inverse = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    spans = []
    for i in range(out_size):
        centre = scale * (i + 0.5)
        low = max(int(centre - support + 0.5), 0)
        taps = np.arange(low, min(int(centre + support + 0.5), in_size), dtype=np.float64)
        weights = np.maximum(0.0, 1.0 - np.abs((taps - centre + 0.5) * inverse))
        total = weights.sum()
        spans.append((low, weights / total if total != 0.0 else weights))
    largest = max((float(w.max()) for _, w in spans if len(w)), default=0.0)
    precision = 0
    while precision < 22 and int(0.5 + largest * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    matrix = np.zeros((out_size, in_size), dtype=np.int64)
    for i, (low, weights) in enumerate(spans):
        matrix[i, low : low + len(weights)] = np.trunc(weights * (1 << precision) + 0.5)  # weights are >= 0
    return matrix, precision
