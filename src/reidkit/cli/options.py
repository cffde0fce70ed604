"""Options that several commands share, defined once so that their names and help never drift apart."""

from __future__ import annotations

from typing import Annotated

import typer

EMBED_BACKEND_HELP = (
    "what runs the ReID model: auto (on the CPU OpenVINO when installed, else ONNX Runtime, else PyTorch; PyTorch "
    "on a GPU), torch, openvino or onnxruntime; an ONNX / OpenVINO file from another toolkit runs in its own runtime "
    "unless this names another that can run it"
)
# None (where a command defaults to it): PyTorch for a reidkit model, the file's own runtime for an .onnx / .xml.
EmbedBackendOption = Annotated[str | None, typer.Option("--embed-backend", help=EMBED_BACKEND_HELP)]
CHECKPOINT_HELP = (
    "a .pt written by reidkit train, a shipped model's name (default: the shipped model), or an .onnx / "
    "OpenVINO .xml with its preprocessing in <file>.yaml"
)
