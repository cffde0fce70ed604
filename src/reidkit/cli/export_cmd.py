"""``reidkit export``: a model file as ONNX or OpenVINO IR, for ONNX Runtime, OpenVINO or any other runtime.

torch, ONNX and OpenVINO are imported inside the command so that ``reidkit --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``export`` to the ``reidkit`` app."""
    app.command("export", no_args_is_help=True)(export)


def export(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="a .pt written by reidkit train")],
    out: Annotated[Path, typer.Option("--out", help="output file: *.onnx, or *.xml (its .bin is written beside)")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or openvino")] = "onnx",
    fp16: Annotated[
        bool, typer.Option("--fp16", help="store the weights as float16 (half the file; computed in float32)")
    ] = False,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="accept any batch size (default: batches of 1)")
    ] = False,
) -> None:
    """Export a ReID model with its preprocessing as metadata; the file is run once to check it against PyTorch."""
    from reidkit.inference.export import export_model

    result = export_model(checkpoint, fmt, out, fp16=fp16, dynamic_batch=dynamic_batch)
    batch = "any batch size" if result.dynamic_batch else "batch 1"
    height, width = result.input_size
    typer.echo(
        f"wrote {', '.join(map(str, result.files))}: {result.format} {result.precision}, input {height}x{width}, "
        f"{batch}, {result.feature_dim}-d features, model {result.model_id}"
    )
    typer.echo(f"checked: max abs difference from PyTorch {result.max_abs_diff:.2e} on a probe batch")
