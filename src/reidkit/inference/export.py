"""``reidkit export``: a model file as an ONNX or OpenVINO IR file that a runtime uses with nothing beside it.

Both formats carry the model card (input size, mean / std, feature size, model id) as metadata
(``export_metadata``). Every export is checked before the command reports success: the written file is loaded by
its runtime (ONNX Runtime, OpenVINO) and run on a probe batch, and the largest difference from PyTorch's features is
reported, so a user sees what ``--fp16`` costs on their own model.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from reidkit.errors import ConfigError
from reidkit.inference.export_metadata import export_metadata
from reidkit.inference.foreign_model import is_foreign_model
from reidkit.inference.onnx_export import export_onnx
from reidkit.inference.openvino_runtime import save_ir
from reidkit.models.model_file import load_model, model_id
from reidkit.openvino_core import shared_core

FORMATS = {"onnx": ".onnx", "openvino": ".xml"}
PROBE_BATCH = 2


@dataclass(frozen=True)
class ExportResult:
    """``files``: what was written (OpenVINO: the .xml and its .bin); ``max_abs_diff``: the largest difference from
    PyTorch's features on a probe batch of ``PROBE_BATCH`` random crops, run by the format's runtime."""

    files: tuple[Path, ...]
    format: str
    model_id: str
    precision: str
    dynamic_batch: bool
    input_size: tuple[int, int]
    feature_dim: int
    max_abs_diff: float


def check_export_options(fmt: str, out: Path) -> Path:
    """The resolved ``--out`` for ``--format``; a wrong format, suffix or unwritable folder is one ``ConfigError``
    before the model is even loaded."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: use {' or '.join(FORMATS)}")
    suffix = FORMATS[fmt]
    if out.suffix.lower() != suffix:
        raise ConfigError(f"--out {out}: a {fmt} export is written as a {suffix} file; name it *{suffix}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name ending in {suffix}")
    try:  # a real write, not os.access: root passes every permission check, not a read-only file system
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from exc
    return out


def export_model(
    checkpoint: Path, fmt: str, out: Path, *, fp16: bool = False, dynamic_batch: bool = False
) -> ExportResult:
    """Export the model file ``checkpoint`` as ``fmt`` (``onnx`` or ``openvino``) to ``out``, atomically."""
    out = check_export_options(fmt, Path(out))
    if is_foreign_model(checkpoint):
        raise ConfigError(f"--checkpoint {checkpoint}: export converts a reidkit .pt; this is already an ONNX / "
                          "OpenVINO file, which every command takes as it is")
    model, card = load_model(checkpoint)
    identity = model_id(model, card)
    precision = "fp16" if fp16 else "fp32"
    feature_dim = int(model.feature_dim)  # type: ignore[arg-type]
    if fmt == "onnx":
        files: tuple[Path, ...] = (export_onnx(model, card, identity, out, fp16=fp16, dynamic_batch=dynamic_batch),)
    else:
        metadata = export_metadata(card, identity, feature_dim, precision)
        files = save_ir(model, card.input_size, out, metadata, fp16=fp16, dynamic_batch=dynamic_batch)
    generator = torch.Generator().manual_seed(0)
    pixels = torch.rand(PROBE_BATCH if dynamic_batch else 1, 3, *card.input_size, generator=generator)
    probe = (pixels - torch.tensor(card.mean).view(3, 1, 1)) / torch.tensor(card.std).view(3, 1, 1)
    with torch.inference_mode():
        expected = model(probe).numpy()
    got = run_exported(files[0], probe.numpy())
    return ExportResult(
        files, fmt, identity, precision, dynamic_batch, card.input_size, feature_dim,
        float(np.abs(got - expected).max()),
    )


def run_exported(path: Path, batch: np.ndarray) -> np.ndarray:
    """Features of an exported file (``.onnx`` by ONNX Runtime, ``.xml`` by OpenVINO in float32) for an NCHW
    float32 batch that is already normalised."""
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0])
    compiled = shared_core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled(batch)[0])
