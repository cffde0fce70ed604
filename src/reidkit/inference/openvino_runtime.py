"""A ReID network run by the OpenVINO runtime on the CPU, converted from its PyTorch module.

On x86 cores OpenVINO runs the ReID networks clearly faster than PyTorch eager with channels_last (figures:
benchmarks/RESULTS.md, Inference on CPU), which is what lets video ingest keep up with a camera. The conversion
traces the module with an example input; the batch dimension is left free so one compilation serves any batch size.
``save_ir`` writes the same conversion as a standalone OpenVINO IR file (``reidkit export --format openvino``).

Conversion costs seconds per command (tracing MGN), so a checkpoint's converted model is kept as OpenVINO IR under
``$REIDKIT_CACHE_DIR`` (default ``~/.cache/reidkit``), keyed by its model id and the OpenVINO version: the next
``reidkit ingest`` with the same checkpoint only compiles. A cache entry that cannot be read is converted again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidkit.errors import ModelError
from reidkit.inference.query_ir import (
    CACHE_ENV,
    QueryRecord,
    cache_root,
    compile_f32,
    openvino_cache_folder,
    write_query_record,
)
from reidkit.openvino_core import shared_core

__all__ = ["CACHE_ENV", "cache_root", "compile_f32", "compile_for_cpu", "openvino_module", "save_ir"]


def openvino_module() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ModelError(
            f"backend openvino needs the openvino runtime ({exc}); pip install 'reidkit[openvino]'"
        ) from exc
    return openvino


def compile_for_cpu(
    model: nn.Module, input_size: tuple[int, int], cache_key: str | None = None, record: QueryRecord | None = None
) -> Any:
    """``model`` (in eval mode) compiled for the CPU, any batch size, all cores per call.

    With a ``cache_key`` (a model id: same key, same weights and graph) the converted model is read from, or
    written to, the cache; without one (a live model that may still be training) it is converted every time.
    ``record``: what a search needs to run the cached IR without torch (``query_ir``), put beside it.
    """
    openvino = openvino_module()
    core = shared_core()  # never a Core of its own: see reidkit.openvino_core
    folder = None
    if cache_key is not None:
        folder = openvino_cache_folder(openvino.__version__) / f"{cache_key}-{input_size[0]}x{input_size[1]}"
    cached = None if folder is None else _read_cached(core, folder / "model.xml")
    if cached is None:
        cached = _convert(openvino, model, input_size)
        if folder is not None:
            _write_cached(openvino, cached, folder)
    if folder is not None and record is not None:
        write_query_record(folder, record)
    return compile_f32(core, cached)


def save_ir(
    model: nn.Module,
    input_size: tuple[int, int],
    xml: Path,
    metadata: dict[str, str],
    *,
    fp16: bool,
    dynamic_batch: bool,
) -> tuple[Path, Path]:
    """Convert ``model`` and write ``xml`` + its ``.bin``, with ``metadata`` as ``rt_info`` ``reidkit/<key>``.

    ``fp16``: weights stored as float16 (``compress_to_fp16``), decompressed to float32 when compiled.
    ``dynamic_batch``: any batch size, else 1. Both files are written in a temporary folder beside ``xml`` and
    renamed into place, the ``.bin`` first, so an ``.xml`` that can be read always has its weights.
    """
    openvino = openvino_module()
    converted = _convert(openvino, model, input_size)
    if not dynamic_batch:
        converted.reshape([1, 3, *input_size])
    for key, value in metadata.items():
        converted.set_rt_info(value, ["reidkit", key])
    staging = Path(tempfile.mkdtemp(prefix=f".{xml.stem}-", dir=xml.parent))
    try:
        openvino.save_model(converted, str(staging / "model.xml"), compress_to_fp16=fp16)
        bin_path = xml.with_suffix(".bin")
        os.replace(staging / "model.bin", bin_path)
        os.replace(staging / "model.xml", xml)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml, bin_path


def _convert(openvino: Any, model: nn.Module, input_size: tuple[int, int]) -> Any:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The converter traces with torch.jit, which warns that tracing is deprecated: nothing a user can act on.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            converted = openvino.convert_model(model, example_input=torch.zeros(1, 3, *input_size))
    except Exception as exc:  # the converter raises many kinds; the one line is what the user can act on
        raise ModelError(f"cannot convert {type(model).__name__} to OpenVINO ({type(exc).__name__}: {exc})") from exc
    finally:
        model.train(was_training)
    converted.reshape([-1, 3, *input_size])
    return converted


def _read_cached(core: Any, xml: Path) -> Any | None:
    """The cached model, or None when there is none or it cannot be read (it is then converted and replaced)."""
    if not xml.is_file():
        return None
    try:
        return core.read_model(str(xml))
    except Exception:  # a truncated or foreign file: the cache is only a cache
        return None


def _write_cached(openvino: Any, converted: Any, folder: Path) -> None:
    """Write IR (.xml + .bin, float32 weights) into a temporary folder and rename it into place, so that a reader
    never sees half a model; a cache that cannot be written (read-only home, full disk) costs only a conversion."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    except OSError:
        return
    try:
        openvino.save_model(converted, str(staging / "model.xml"), compress_to_fp16=False)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except (OSError, RuntimeError):  # OpenVINO reports a failed write as RuntimeError
        shutil.rmtree(staging, ignore_errors=True)
