"""What an exported model file says about itself, shared by the ONNX and OpenVINO exports, and the atomic write.

An exported file must be usable with nothing beside it: the runtime that loads it has to know the input size and the
normalisation to feed it, the feature size it returns, and the model id, the key that says which stored features
its own are comparable with. The same string fields go into ONNX ``metadata_props`` and OpenVINO ``rt_info``
(``reidkit/<field>``), so both formats are read alike.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from reidkit.models.model_file import ModelCard

PREFIX = "reidkit."


def export_metadata(card: ModelCard, model_id: str, feature_dim: int, precision: str) -> dict[str, str]:
    """``model_id``; ``input_size`` as ``HxW``; ``mean`` / ``std`` as comma-separated RGB on 0-1 pixels;
    ``feature_dim``; ``precision`` (``fp32`` / ``fp16``); ``card``, the whole model card as JSON."""
    return {
        "model_id": model_id,
        "input_size": f"{card.input_size[0]}x{card.input_size[1]}",
        "mean": ",".join(repr(float(v)) for v in card.mean),
        "std": ",".join(repr(float(v)) for v in card.std),
        "feature_dim": str(feature_dim),
        "precision": precision,
        "card": json.dumps(card.to_dict(), sort_keys=True),
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, and rename it over ``path``: a reader sees the old
    file or the whole new one, never half of it."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; an exported model is an ordinary file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
