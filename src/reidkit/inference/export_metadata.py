"""What an exported model file says about itself, shared by the ONNX and OpenVINO exports.

An exported file must be usable with nothing beside it: the runtime that loads it has to know the input size and the
normalisation to feed it, the feature size it returns, and the model id, the key that says which stored features
its own are comparable with. The same string fields go into ONNX ``metadata_props`` and OpenVINO ``rt_info``
(``reidkit/<field>``), so both formats are read alike.
"""

from __future__ import annotations

import json

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
