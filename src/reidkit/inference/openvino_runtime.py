"""A ReID network run by the OpenVINO runtime on the CPU, converted in memory from its PyTorch module.

On 2 x86 cores OpenVINO runs MGN-MobileNetV2 1.8-2.9x faster than PyTorch eager with channels_last
(benchmarks/RESULTS.md), which is what lets video ingest keep up with a camera. The conversion traces the module with
an example input; the batch dimension is left free so one compilation serves any batch size. This is also the
first half of an ONNX / OpenVINO IR export: ``openvino.save_model`` can write the converted model as it is.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from reidkit.errors import ModelError


def compile_for_cpu(model: nn.Module, input_size: tuple[int, int]) -> Any:
    """``model`` (in eval mode) converted to OpenVINO and compiled for the CPU, any batch size, all cores per call."""
    try:
        import openvino
    except ImportError as exc:
        raise ModelError(
            f"backend openvino needs the openvino runtime ({exc}); pip install 'reidkit[openvino]'"
        ) from exc
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
    return openvino.Core().compile_model(converted, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
