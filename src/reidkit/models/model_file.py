"""The model file: one ``.pt`` that rebuilds a reidkit model on its own, whoever reads it.

Training writes it, and inference, the person-search store and the demos read it, so it is owned here, beside
``build_model``, and not by any of them. A model file is a plain dict of tensors, numbers, strings and lists, loaded
with ``weights_only=True`` so opening a file from elsewhere cannot run code:

- ``format`` / ``version``: the tag that tells a reidkit model file from any other ``.pt``;
- ``model``: ``{"card": ModelCard, "state_dict": ...}``, enough to rebuild and feed the network;
- anything else its writer adds (a training run adds its config, history and, in ``last.pt``, the optimiser / RNG
  state under ``training_state``; ``weights_only_copy`` drops that for a shareable file).

Files are written to a temporary name and renamed over the old one, so a writer killed mid-write leaves the previous
file intact rather than a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reidkit.errors import ModelError
from reidkit.models.build import build_model
from reidkit.models.zoo import SHIPPED_MODELS, model_file

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
    """Read a reidkit checkpoint (a path, or a shipped model's name), refusing anything else with a one-line
    reason."""
    path = model_file(path)
    if not path.is_file():
        raise ModelError(
            f"{path}: checkpoint not found; pass a .pt file written by `reidkit train` or a shipped model's name "
            f"({', '.join(SHIPPED_MODELS.names())})"
        )
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
    """Rebuild the model of a loaded checkpoint, in eval mode on CPU, without touching any pretrained weights.

    An inference copy's half-precision tensors come back as float32, and the identity classifiers it left out are
    zeros: every process then rebuilds the same weights, so the same ``model_id``.
    """
    card, state = _card_and_state(payload, source)
    # The weights come from the checkpoint, so the backbone is built bare: no download, no shared-file lookup.
    spec = {**card.spec, "pretrained": None}
    model = build_model(**spec)
    dropped = payload["model"].get(DROPPED_KEY, [])
    if dropped:
        own = model.state_dict()
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        state.update({k: torch.zeros_like(own[k]) for k in dropped if k in own})
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


def _card_and_state(payload: dict[str, Any], source: str) -> tuple[ModelCard, dict[str, Any]]:
    try:
        return ModelCard.from_dict(payload["model"]["card"]), payload["model"]["state_dict"]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{source}: checkpoint lacks its model section ({exc}); it was not written by reidkit") from exc


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


# The model section's list of tensors an inference copy left out (identity classifiers).
DROPPED_KEY = "dropped_training_only"


def inference_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """The smallest model file that gives the same test features: no training state, no identity classifiers (a
    third of MGN-MobileNetV2's weights on Market-1501), float tensors in float16 (half again), so a trained model
    can ship inside the package. Its run record (config, metrics, history) stays. How much float16 costs in
    accuracy is measured where a file is made (benchmarks/RESULTS.md, "The shipped model")."""
    from reidkit.models.layers import IdentityClassifier

    shared = weights_only_copy(payload)
    card, state = _card_and_state(shared, "checkpoint")
    model = build_model(**{**card.spec, "pretrained": None})
    dropped = sorted(
        f"{name}.{tensor}" for name, module in model.named_modules() if isinstance(module, IdentityClassifier)
        for tensor, _ in module.named_parameters(recurse=False)
    )
    kept = {k: v.half() if v.is_floating_point() else v for k, v in state.items() if k not in dropped}
    model_section = {"card": card.to_dict(), "state_dict": kept, DROPPED_KEY: dropped}
    return {**shared, "model": model_section}


# Keys a training run adds that only resuming it needs; a weights-only copy leaves them out.
TRAINING_ONLY_KEYS = ("training_state",)


def weights_only_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without training state (optimiser, scheduler, RNG): about a third of the size, safe to share.

    The model, its card and the run's record (config, metrics, history) stay, so the copy still says how it was made.
    """
    return {k: v for k, v in payload.items() if k not in TRAINING_ONLY_KEYS and k not in ("format", "version")}


def save_weights_only(source: Path | str, destination: Path | str) -> Path:
    """Write a weights-only copy of the model file ``source`` to ``destination`` (atomically)."""
    destination = Path(destination)
    save_checkpoint(destination, weights_only_copy(load_checkpoint(source)))
    return destination


def load_matching_weights(model: nn.Module, path: Path | str) -> tuple[int, list[str]]:
    """Copy into ``model`` every tensor of the model file ``path`` whose name and shape match; return the count
    copied and the names left as built.

    For starting a run from another run's model (fine-tuning, domain adaptation): the architecture must be the
    same, but classifier heads sized for another set of identities differ in shape and stay freshly initialised.
    """
    payload = load_checkpoint(path)
    card, state = _card_and_state(payload, str(path))
    own = unwrap(model).state_dict()
    for key in ("name", "backbone"):
        if card.spec.get(key) != getattr(unwrap(model).spec, key, None):
            raise ModelError(
                f"{path}: holds a {card.spec.get('name')}/{card.spec.get('backbone')} model; model.init_checkpoint "
                f"must hold the {key} being trained ({getattr(unwrap(model).spec, key, None)})"
            )
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    unwrap(model).load_state_dict(matching, strict=False)
    return len(matching), sorted(set(own) - set(matching))


def load_model(path: Path | str) -> tuple[nn.Module, ModelCard]:
    """Read a model file and rebuild its model (eval mode, CPU): the one call most readers need."""
    return build_from_checkpoint(load_checkpoint(path), source=str(path))
