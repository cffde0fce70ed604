"""Checkpoints: one file that rebuilds the model on its own, and (for ``last.pt``) resumes training bit for bit.

A checkpoint is a plain dict of tensors, numbers, strings and lists, loaded with ``weights_only=True`` so opening a
file from elsewhere cannot run code. Files are written to a temporary name and renamed over the old one, so a run
killed mid-write leaves the previous checkpoint intact rather than a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reidkit.errors import ModelError

CHECKPOINT_FORMAT = "reidkit-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class ModelCard:
    """What a checkpoint knows about its model besides the weights: enough to rebuild and feed it.

    ``backbone_init`` records how the backbone started ("imagenet", "scratch" or a weights path), because results
    are only comparable between models that started alike.
    """

    spec: dict[str, Any]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    backbone_init: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "backbone_init": self.backbone_init,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        return cls(
            spec=dict(raw["spec"]),
            input_size=(int(raw["input_size"][0]), int(raw["input_size"][1])),
            mean=tuple(float(v) for v in raw["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in raw["std"]),  # type: ignore[arg-type]
            backbone_init=str(raw["backbone_init"]),
        )


def backbone_init_label(pretrained: str | None) -> str:
    """The ``backbone_init`` string for a ``ModelConfig.pretrained`` value."""
    return "scratch" if pretrained is None else str(pretrained)


def spec_dict(model: nn.Module) -> dict[str, Any]:
    """The model's ``ModelSpec`` as a plain dict (what ``build_model(**spec)`` takes back)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ModelError(f"{type(model).__name__} has no .spec; only reidkit.models models can be checkpointed")
    return asdict(spec)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: temp file in the same folder, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a reidkit checkpoint, refusing anything else with a one-line reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found; pass a .pt file written by `reidkit train`")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise ModelError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}); the file is damaged or foreign"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not a reidkit checkpoint (no format tag); pass a file written by `reidkit train`")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ModelError(
            f"{path}: checkpoint version {payload.get('version')} is not supported (this reidkit reads "
            f"{CHECKPOINT_VERSION}); retrain or use the reidkit release that wrote it"
        )
    return payload


def model_payload(model: nn.Module, card: ModelCard) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the model (weights on CPU, so the file loads anywhere)."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}
    return {"model": {"card": card.to_dict(), "state_dict": state}}


def build_from_checkpoint(payload: dict[str, Any], source: str = "checkpoint") -> tuple[nn.Module, ModelCard]:
    """Rebuild the model of a loaded checkpoint, in eval mode on CPU, without touching any pretrained weights."""
    from reidkit.models import build_model

    try:
        card = ModelCard.from_dict(payload["model"]["card"])
        state = payload["model"]["state_dict"]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(
            f"{source}: checkpoint lacks its model section ({exc}); it was not written by reidkit"
        ) from exc
    # The weights come from the checkpoint, so the backbone is built bare: no download, no shared-file lookup.
    spec = {**card.spec, "pretrained": None}
    model = build_model(**spec)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = " ".join(str(exc).split())[:300]
        raise ModelError(f"{source}: weights do not fit model {card.spec.get('name')!r} ({first})") from exc
    if missing or unexpected:
        raise ModelError(
            f"{source}: weights do not fit model {card.spec.get('name')!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. {(missing or unexpected)[0]})"
        )
    model.eval()
    return model, card


def model_id(model: nn.Module, card: ModelCard) -> str:
    """A stable hash of the weights and everything that changes features (spec, input size, normalisation).

    Stable across devices and processes: tensors are hashed as their CPU bytes in state-dict key order.
    """
    digest = hashlib.sha256()
    meta = {k: v for k, v in card.to_dict().items() if k in ("spec", "input_size", "mean", "std")}
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for key, tensor in sorted(unwrap(model).state_dict().items()):
        digest.update(key.encode())
        cpu = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{cpu.dtype}{tuple(tensor.shape)}".encode())
        digest.update(cpu.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def unwrap(model: nn.Module) -> nn.Module:
    """The user model inside a compiled / distributed wrapper (their state dicts prefix the names)."""
    inner = getattr(model, "_orig_mod", model)
    return getattr(inner, "module", inner)


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states, as tensors/ints so they load with ``weights_only``."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants the nested tuples back that serialisation may have turned into lists."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value
