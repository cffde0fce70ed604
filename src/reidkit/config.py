"""Experiment configuration: typed dataclasses, loaded from YAML and patched by ``key=value`` overrides.

Every value is type-checked against its field when it is read, so a misspelt key or a string where a number belongs
fails before anything is built, with the file (or override) and the dotted key in the message, instead of surfacing
as a ``TypeError`` deep inside training. There is deliberately no global config: callers pass the dataclass down.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from reidkit.errors import ConfigError
from reidkit.recipes import SUFFIX as RECIPE_SUFFIX, resolve_recipe, shipped_recipe

AmpMode = Literal["none", "fp16", "bf16", "auto"]
# The normalisation every torchvision ImageNet backbone was trained with; data.transforms and model cards reuse it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The top-level key of a recipe that names the recipe it inherits from (``read_recipe``).
BASE_KEY = "base"


@dataclass
class DataConfig:
    """Where the images come from, how they are sized and augmented, and how batches are drawn.

    ``cache_in_memory`` decodes the (resized) train set once into one uint8 tensor kept on the training device and
    augments whole batches there: it removes JPEG decoding and worker processes from the loop, which is what lets a
    GPU reach its throughput and what makes a 2-core CPU run worthwhile at all.
    ``attributes``: Market-1501's attribute labels (``market_attribute.mat``); with it the model gets an attribute
    head trained jointly with identity (``loss.attribute`` weighs it).
    """

    dataset: str = "market1501"
    root: str = "data/market1501"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    height: int = 384
    width: int = 128
    ids_per_batch: int = 16
    images_per_id: int = 4
    workers: int = 4
    cache_in_memory: bool = False
    flip: bool = True
    pad: int = 10
    random_erasing: float = 0.5
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    test_batch_size: int = 128
    max_train_ids: int | None = None
    max_test_ids: int | None = None
    attributes: str | None = None

    @property
    def batch_size(self) -> int:
        return self.ids_per_batch * self.images_per_id


@dataclass
class ModelConfig:
    """Which ``reidkit.models.build_model`` model to train; ``kwargs`` go to the model's constructor.

    ``freeze_layers`` keeps the first N layers of the backbone's trunk at their pretrained weights and BatchNorm
    statistics (``ReidModel.freeze_trunk``): a training-time choice, so it is not part of the model's spec.
    ``init_checkpoint`` starts from another run's model file (same model and backbone): every tensor whose shape
    fits is copied, so only classifier heads sized for other identities start fresh (fine-tuning, adaptation).
    """

    name: str = "mgn"
    backbone: str = "resnet50"
    pretrained: str | None = "imagenet"
    kwargs: dict[str, Any] = field(default_factory=dict)
    freeze_layers: int = 0
    init_checkpoint: str | None = None


@dataclass
class LossConfig:
    """Weights of the softmax and triplet terms; ``soft_margin`` replaces the hinge margin by softplus (TriNet).

    ``head_reduction``: ``sum`` adds the per-head losses as the MGN paper does; ``mean`` averages them per kind.
    ``attribute`` weighs the attribute loss (the mean over attribute groups) of a run with ``data.attributes``.
    """

    softmax: float = 1.0
    triplet: float = 1.0
    attribute: float = 1.0
    label_smoothing: float = 0.0
    triplet_margin: float = 1.2
    soft_margin: bool = False
    head_reduction: Literal["sum", "mean"] = "sum"


@dataclass
class OptimConfig:
    """Optimiser and schedule (per epoch). ``backbone_lr_mult`` scales the pretrained layers' rate (PCB: 0.1).

    The schedule is x``gamma`` at each of ``milestones``, or, with ``cosine_epochs`` N > 0, a half cosine from the
    full rate after warm-up down to zero at epoch N: a schedule for a run whose length is known in advance.
    """

    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [40, 60])
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_factor: float = 0.1
    backbone_lr_mult: float = 1.0
    cosine_epochs: int = 0


@dataclass
class TrainConfig:
    """The loop itself. ``max_train_seconds`` bounds wall-clock time: training stops after the step that crosses it.

    ``amp="auto"`` means bf16 autocast on a CUDA device that supports it and full precision everywhere else.
    ``amp="bf16"`` on a CPU autocasts only where the CPU has native bf16 (AMX / AVX512-BF16) and falls back to full
    precision, saying so, where it would be emulated and slower; fp16 is refused on a CPU.

    ``fit_schedule_to_budget`` (with ``max_train_seconds``): after the first epoch, if the planned epochs cannot
    finish within the budget at the measured pace, the run is shortened to the epochs that fit and the learning-rate
    cosine ends with them, so that a slower machine still ends at a low rate instead of being cut off mid-schedule.

    ``eval_backend: openvino`` computes the evaluation's features with the OpenVINO runtime, about twice as fast
    as PyTorch on a small CPU and equal to 1e-4; it applies on the CPU only (a GPU evaluates with PyTorch).

    ``sync_bn`` matters only with several processes (torchrun): BatchNorm then normalises with the statistics of the
    global P x K batch instead of each process's slice, so the run computes what one process would.
    """

    epochs: int = 80
    eval_every: int = 10
    seed: int = 0
    amp: AmpMode = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    output_dir: str = "runs/experiment"
    max_train_seconds: float | None = None
    fit_schedule_to_budget: bool = False
    log_every: int = 20
    eval_metric: Literal["euclidean", "cosine"] = "euclidean"
    eval_flip: bool = False
    eval_backend: Literal["torch", "openvino"] = "torch"
    sync_bn: bool = False
    progress: bool = True
    tensorboard: bool = True


@dataclass
class ExperimentConfig:
    """One training run: everything ``reidkit train`` needs, and what every checkpoint stores."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: Path | str, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Read a YAML experiment file, or a shipped recipe by name (``reidkit.recipes``), with the recipes it inherits
    from (``base:``), and apply ``section.key=value`` overrides (values are parsed as YAML)."""
    path = resolve_recipe(path)
    config = config_from_dict(read_recipe(path), source=str(path))
    return apply_overrides(config, overrides)


def read_recipe(path: Path) -> dict[str, Any]:
    """The nested dict of a YAML recipe, with its ``base:`` chain merged in (the file's own keys win).

    ``base`` names a shipped recipe or a file relative to the one that names it. Recipes of one family (the
    ``cuhk03_shared_*`` benchmark) then state their shared settings once, and each says only how it differs.
    Mappings merge key by key, every other value (lists included) is replaced whole.
    """
    return _read_with_bases(path, chain=())


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    raw = _read_yaml_mapping(path)
    base = raw.pop(BASE_KEY, None)
    _build(ExperimentConfig, raw, prefix="", source=str(path))  # each file's own keys and types, named as its own
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: {BASE_KEY} must be a recipe name or a path relative to this file, got {base!r}")
    base_path = _resolve_base(path, base)
    chain = (*chain, path.resolve())
    if base_path.resolve() in chain:
        names = " -> ".join(p.name for p in (*chain, base_path))
        raise ConfigError(f"{path}: {BASE_KEY} {base!r} makes a cycle ({names}); one of them must not inherit")
    return _deep_merge(_read_with_bases(base_path, chain), raw)


def _resolve_base(path: Path, base: str) -> Path:
    """A file beside ``path`` (with or without ``.yaml``), else the shipped recipe of that name."""
    for candidate in (path.parent / base, path.parent / f"{base}{RECIPE_SUFFIX}"):
        if candidate.is_file():
            return candidate
    shipped = shipped_recipe(base)
    if shipped is None:
        raise ConfigError(
            f"{path}: {BASE_KEY} {base!r} is neither a file beside it nor a shipped recipe (reidkit list recipes)"
        )
    return shipped


def _read_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc}); check the --config path") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections (data, model, loss, optim, train)")
    return raw


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Build and check an ``ExperimentConfig`` from nested dicts (a YAML file, or the copy inside a checkpoint)."""
    config = _build(ExperimentConfig, raw, prefix="", source=source)
    validate(config, source)
    return config


def apply_overrides(config: ExperimentConfig, overrides: typing.Sequence[str]) -> ExperimentConfig:
    """Return a copy of ``config`` with each ``section.key=value`` applied, re-checked as a whole."""
    raw = config.to_dict()
    for item in overrides:
        key, sep, value_text = item.partition("=")
        source = f"override {item!r}"
        if not sep or not key.strip():
            raise ConfigError(f"{source}: expected section.key=value, e.g. train.epochs=5")
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ConfigError(f"{source}: name the section too, e.g. train.{key.strip()}=...")
        try:
            value = yaml.safe_load(value_text) if value_text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: value is not valid YAML ({_one_line(exc)})") from exc
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{source}: unknown key {'.'.join(parts[: depth + 1])!r}")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: {'.'.join(parts[:-1])!r} is not a section")
        # kwargs-style dict fields accept new keys; dataclass sections do not.
        if parts[-1] not in node and _is_dataclass_section(parts[:-1]):
            raise ConfigError(f"{source}: unknown key {key.strip()!r}; known: {', '.join(node)}")
        node[parts[-1]] = value
        _build(ExperimentConfig, raw, prefix="", source=source)  # type-check now, so the message names this override
    # Cross-field checks wait for all overrides: `data.ids_per_batch=1 loss.triplet=0` is valid only as a pair.
    return config_from_dict(raw, source=f"overrides {' '.join(overrides)}" if overrides else "config")


def save_config(config: ExperimentConfig, path: Path) -> None:
    """Write the resolved config beside a run's outputs so the run can be reproduced from its folder alone."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def validate(config: ExperimentConfig, source: str) -> None:
    """Value checks that types alone cannot express."""
    d, o, t, loss = config.data, config.optim, config.train, config.loss
    positive = {
        "data.height": d.height,
        "data.width": d.width,
        "data.ids_per_batch": d.ids_per_batch,
        "data.images_per_id": d.images_per_id,
        "data.test_batch_size": d.test_batch_size,
        "train.epochs": t.epochs,
        "train.eval_every": t.eval_every,
        "train.log_every": t.log_every,
        "optim.lr": o.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: {key} must be > 0, got {value}")
    nonnegative = {
        "data.workers": d.workers,
        "data.pad": d.pad,
        "optim.weight_decay": o.weight_decay,
        "optim.warmup_epochs": o.warmup_epochs,
        "optim.cosine_epochs": o.cosine_epochs,
        "model.freeze_layers": config.model.freeze_layers,
        "loss.softmax": loss.softmax,
        "loss.triplet": loss.triplet,
        "loss.attribute": loss.attribute,
    }
    for key, value in nonnegative.items():
        if value < 0:
            raise ConfigError(f"{source}: {key} must be >= 0, got {value}")
    if not 0.0 <= d.random_erasing <= 1.0:
        raise ConfigError(f"{source}: data.random_erasing is a probability in [0, 1], got {d.random_erasing}")
    if not 0.0 <= loss.label_smoothing < 1.0:
        raise ConfigError(f"{source}: loss.label_smoothing must be in [0, 1), got {loss.label_smoothing}")
    if loss.softmax == 0 and loss.triplet == 0 and not (d.attributes and loss.attribute > 0):
        raise ConfigError(f"{source}: loss.softmax and loss.triplet are both 0; nothing would be learnt")
    if loss.triplet > 0 and (d.ids_per_batch < 2 or d.images_per_id < 2):
        raise ConfigError(
            f"{source}: the triplet loss needs data.ids_per_batch >= 2 and data.images_per_id >= 2 "
            f"(got {d.ids_per_batch} x {d.images_per_id}); raise them or set loss.triplet=0"
        )
    if len(d.mean) != 3 or len(d.std) != 3 or min(d.std) <= 0:
        raise ConfigError(f"{source}: data.mean and data.std need 3 values each (RGB), std > 0")
    if sorted(o.milestones) != o.milestones:
        raise ConfigError(f"{source}: optim.milestones must be increasing, got {o.milestones}")
    if o.cosine_epochs and o.milestones:
        raise ConfigError(
            f"{source}: optim.cosine_epochs={o.cosine_epochs} and optim.milestones={o.milestones} are two schedules; "
            "set optim.milestones=[] for the cosine one, or optim.cosine_epochs=0 for steps"
        )
    if o.cosine_epochs and o.cosine_epochs <= o.warmup_epochs:
        raise ConfigError(
            f"{source}: optim.cosine_epochs ({o.cosine_epochs}) must exceed optim.warmup_epochs ({o.warmup_epochs})"
        )
    if config.model.freeze_layers and config.model.pretrained is None:
        raise ConfigError(
            f"{source}: model.freeze_layers={config.model.freeze_layers} would fix randomly initialised layers "
            "(model.pretrained is null); set model.freeze_layers=0 or pretrained weights"
        )
    for key, count in (("data.max_train_ids", d.max_train_ids), ("data.max_test_ids", d.max_test_ids)):
        if count is not None and count < 2:
            raise ConfigError(f"{source}: {key} must be >= 2 or null, got {count}")
    if t.max_train_seconds is not None and t.max_train_seconds <= 0:
        raise ConfigError(f"{source}: train.max_train_seconds must be > 0 or null, got {t.max_train_seconds}")


_SECTIONS = frozenset(f.name for f in fields(ExperimentConfig))


def _is_dataclass_section(path: list[str]) -> bool:
    return len(path) == 1 and path[0] in _SECTIONS


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix + unknown[0]!r}; known keys{' in ' + where if prefix else ''}: "
            f"{', '.join(sorted(known))}"
        )
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, f"{prefix}{name}.", source)
        else:
            values[name] = _check(value, hint, f"{prefix}{name}", source)
    return cls(**values)


def _check(value: Any, hint: Any, key: str, source: str) -> Any:
    """Return ``value`` converted to ``hint`` where that is lossless (int -> float), else raise ConfigError."""
    ok, converted = _coerce(value, hint)
    if not ok:
        raise ConfigError(f"{source}: {key} must be {_describe(hint)}, got {value!r}")
    return converted


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            ok, converted = _coerce(value, arg)
            if ok:
                return True, converted
        return False, None
    if origin is Literal:
        return (value in args and not isinstance(value, bool)), value
    if hint is type(None):
        return value is None, None
    if hint is Any:
        return True, value
    if origin is list:
        if not isinstance(value, list):
            return False, None
        items = [_coerce(item, args[0]) for item in value]
        return all(ok for ok, _ in items), [item for _, item in items]
    if origin is dict:
        return (isinstance(value, dict) and all(isinstance(k, str) for k in value)), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if hint is float:
        if isinstance(value, str):
            # YAML 1.1 reads "3.5e-4" (no dot) as a string; accept it rather than make users write 3.5e-04.
            try:
                return True, float(value)
            except ValueError:
                return False, None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, None
        return True, float(value)
    if hint is str:
        return isinstance(value, str), value
    raise TypeError(f"config field type {hint!r} is not supported")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is list:
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(args[0], str(args[0]))
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
