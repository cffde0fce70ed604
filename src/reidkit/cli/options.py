"""Options that several commands share, defined once so that their names and help never drift apart."""

from __future__ import annotations

from typing import Annotated

import typer

EMBED_BACKEND_HELP = (
    "what runs the ReID model: auto (on the CPU OpenVINO when installed, else ONNX Runtime, else PyTorch; PyTorch "
    "on a GPU), torch, openvino or onnxruntime"
)
EmbedBackendOption = Annotated[str, typer.Option("--embed-backend", help=EMBED_BACKEND_HELP)]
