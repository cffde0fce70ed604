"""A training run from its config: P x K batches, softmax + triplet loss, periodic Market-1501 evaluation,
resumable checkpoints.

``Trainer`` builds the pieces, one public build step each (``load_dataset``, ``build_model``, ``build_optimizer``,
``build_scheduler``, ``build_train_batches``, ``build_loss``, ``build_evaluator``, ``build_hooks``,
``build_writers``; ``build_loop`` calls them in order), and hands them to ``TrainLoop`` (``loop.py``) with the hooks
the config asks for (``hooks.py``); ``fit`` returns what the run did. A subclass overrides the step it changes.

Reproducibility contract: every epoch's data randomness (which crops form which batch, and every augmentation
draw) is a pure function of (``train.seed``, epoch), and everything else that evolves (weights, optimiser,
schedule, grad scaler, global RNGs) is in ``last.pt``. So a run killed at any point and resumed with ``--resume``
continues exactly as if it had never stopped (bit for bit on CPU; on GPU, up to cuDNN's own non-determinism).

Under ``torchrun`` (``reidkit train --nproc N``) the run is data-parallel (``reidkit.training.distributed``): each
rank takes its slice of every global P x K batch, the model is wrapped in ``DistributedDataParallel`` (with global
BatchNorm if ``train.sync_bn``), the losses see the gathered global batch, evaluation is shared out, and only rank 0
logs and writes files. With ``sync_bn`` and the cached batches, N processes compute the one-process run (to float
rounding); resume is bit-exact per rank (each rank's RNG states are in ``last.pt``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from reidkit.config import ExperimentConfig, config_from_dict, save_config
from reidkit.data import PKSampler, ReidDataset, load_dataset, relabel, verify_images
from reidkit.data.subset import subset_identities
from reidkit.errors import ConfigError, DatasetError
from reidkit.inference import EvalRun, FeatureExtractor
from reidkit.data.market_attributes import AttributeLabels, read_market1501_attributes
from reidkit.losses import AttributeLoss, LossWeights, ReidLoss
from reidkit.losses.attribute import MISSING
from reidkit.models import ReidModel, build_model
from reidkit.models.model_file import ModelCard, backbone_init_label, load_checkpoint, load_matching_weights
from reidkit.training.batches import BatchSource, build_batch_source
from reidkit.training.distributed import (
    GlobalBatchLoss,
    ShardedExtractor,
    World,
    convert_sync_batchnorm,
    start_world,
)
from reidkit.training.hooks import BEST, LAST, Hook, default_hooks
from reidkit.training.loop import TrainLoop
from reidkit.training.optim import build_optimizer, build_scheduler
from reidkit.training.runtime import (
    cpu_bf16_fallback,
    evaluation_extractor,
    resolve_amp,
    resolve_device,
    seed_everything,
)
from reidkit.training.step import TrainStep
from reidkit.training.writers import ConsoleWriter, MetricsWriter, RunFilesWriter, TensorBoardWriter

# Keys that may differ between a run and its resumption: they change how long or how verbosely it runs, not what
# any epoch computes.
RESUMABLE_CHANGES = frozenset(
    {"train.epochs", "train.max_train_seconds", "train.eval_every", "train.progress", "train.log_every",
     "train.tensorboard", "train.eval_backend", "data.workers", "data.test_batch_size"}
)


@dataclass
class TrainResult:
    """``final_eval`` is the last evaluation of this call (None if it ran no epoch), with its distance matrix.

    ``is_main_process`` is false on every rank of a multi-process run but rank 0 (which alone wrote the files).
    """

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    epochs_done: int
    stopped_early: bool
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    final_eval: EvalRun | None
    is_main_process: bool = True


class Trainer:
    """Runs one ``ExperimentConfig``; ``dataset`` may be passed in to skip reading it from ``data.root`` again.

    ``hooks`` run after the ones the config asks for (``reidkit.training.hooks.default_hooks``), so they see each
    epoch evaluated and checkpointed. To change one piece of a run, subclass and override its build step (e.g.
    ``build_optimizer``, or ``build_writers`` to send the records somewhere else too).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        dataset: ReidDataset | None = None,
        echo: Callable[[str], None] = print,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.config = config
        self.echo = echo
        self.hooks = list(hooks)
        self._dataset = dataset
        self.world = World()
        self.device = torch.device("cpu")  # the training device and autocast dtype: set by ``build_loop``
        self.amp_dtype: torch.dtype | None = None

    def fit(self, resume: bool = False) -> TrainResult:
        """Train; under torchrun this joins the process group first and leaves it at the end."""
        self.world = start_world(resolve_device(self.config.train.device))
        try:
            return self._fit(resume)
        finally:
            self.world.close()

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.config
        out = Path(cfg.train.output_dir)
        payload = self._resume_payload(out) if resume else None
        if payload is None and (out / LAST).exists():
            raise ConfigError(
                f"{out / LAST} exists: train.output_dir already holds a run; pass --resume to continue it or "
                "choose another train.output_dir"
            )
        if self.world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        else:  # one voice: the other ranks print nothing and show no progress bars
            self.echo = _silent
            self.config = replace(cfg, train=replace(cfg.train, progress=False))
        loop = self.build_loop()
        if payload is not None:
            loop.resume_from(payload)
            self.echo(f"resuming {out / LAST} after epoch {loop.start_epoch}")
        loop.run()
        return TrainResult(
            output_dir=out,
            last_checkpoint=out / LAST,
            best_checkpoint=out / BEST if (out / BEST).exists() else None,
            epochs_done=len(loop.history),
            stopped_early=loop.stop_requested,
            metrics=loop.metrics,
            history=loop.history,
            final_eval=loop.final_eval,
            is_main_process=self.world.is_main,
        )

    # The build steps, in the order ``build_loop`` calls them. Each is public so that a subclass can replace one
    # piece of a run (another optimiser, an extra writer) and keep the rest, as in fast-reid's DefaultTrainer. They
    # run in a fixed order after ``seed_everything``, which is what keeps a run's random draws, and so ``--resume``,
    # reproducible: an override that draws random numbers changes the run, not its resumability.

    def build_loop(self) -> TrainLoop:
        """Every build step for ``self.config``, wired into the loop that ``fit`` runs (and resumes)."""
        cfg, world = self.config, self.world
        self.device = device = world.device(resolve_device(cfg.train.device))
        self.amp_dtype = resolve_amp(cfg.train.amp, device)
        if cpu_bf16_fallback(cfg.train.amp, device):
            self.echo("train.amp=bf16: this CPU has no native bf16 (AMX / AVX512-BF16); training in full precision")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        seed_everything(cfg.train.seed)

        dataset = self.load_dataset()
        pid_to_label = relabel(dataset.train)
        self.echo(
            f"training {cfg.model.name}/{cfg.model.backbone} on {dataset.name}: {len(pid_to_label)} ids, "
            f"{len(dataset.train)} images, {cfg.data.height}x{cfg.data.width}, device {device}, "
            f"amp {self.amp_dtype or 'none'}"
            + (f", {world.world_size} processes" if world.is_distributed else "")
        )
        attributes = self.load_attribute_labels()
        model = self.build_model(len(pid_to_label), attributes.schema.name if attributes else None)
        card = self.build_model_card(model)
        optimizer = self.build_optimizer(model)
        scheduler = self.build_scheduler(optimizer)
        scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        batches, steps_per_epoch = self.build_train_batches(dataset, pid_to_label)
        loss_fn = self.build_loss(attribute_targets(attributes, pid_to_label) if attributes else None)
        extractor = self.build_evaluator(model, card)
        step = TrainStep(
            self.wrap_model(model),
            GlobalBatchLoss(loss_fn) if world.is_distributed else loss_fn,
            optimizer, scaler, self.amp_dtype, device, self.channels_last,
        )
        hooks = self.build_hooks(extractor, dataset)
        return TrainLoop(cfg, step, scheduler, batches, steps_per_epoch, card, hooks=hooks, echo=self.echo, world=world)

    @property
    def channels_last(self) -> bool:
        """Whether the model and its batches use the channels_last memory format on ``self.device``.

        cuDNN prefers channels_last; on a CPU it is used with native bf16 only, the combination measured (the demo:
        249 against 337 ms a step). In full precision on a CPU it broke the two-process run's equality with one
        process (global BatchNorm; benchmarks/RESULTS.md), so float32 CPU runs stay contiguous.
        """
        return self.config.train.channels_last and (
            self.device.type == "cuda" or self.amp_dtype == torch.bfloat16
        )

    def load_dataset(self) -> ReidDataset:
        """The run's dataset (``data.*``, or the one passed in), cut to ``data.max_*_ids`` and checked."""
        d = self.config.data
        dataset = self._dataset or load_dataset(d.dataset, Path(d.root), **d.dataset_options)
        dataset = subset_identities(dataset, d.max_train_ids, d.max_test_ids)
        if not dataset.train:
            raise DatasetError(f"{dataset.root}: the training split is empty; check data.root")
        # Query/gallery crops are read in the extractor, which reports a bad file as one line; a header check
        # here catches missing or non-image files before any time is spent training.
        verify_images(dataset.query + dataset.gallery, mode="header")
        return dataset

    def load_attribute_labels(self) -> AttributeLabels | None:
        """The training identities' attribute labels (``data.attributes``), None for a run without attributes."""
        path = self.config.data.attributes
        if not path:
            return None
        labels = read_market1501_attributes(path, "train")
        self.echo(f"attribute labels: {len(labels.by_pid)} identities, {len(labels.schema.groups)} groups ({path})")
        return labels

    def build_model(self, num_classes: int, attributes: str | None = None) -> ReidModel:
        """``model.*`` with ``num_classes`` classifier outputs (and the ``attributes`` schema's head, if given), its
        starting weights and frozen layers, on the training device in the training memory format."""
        cfg = self.config.model
        kwargs = {**cfg.kwargs, "attributes": attributes} if attributes else cfg.kwargs
        model = build_model(
            cfg.name, num_classes=num_classes, backbone=cfg.backbone, pretrained=cfg.pretrained, kwargs=kwargs
        )
        if cfg.init_checkpoint:
            copied, fresh = load_matching_weights(model, cfg.init_checkpoint)
            self.echo(f"started from {cfg.init_checkpoint}: {copied} tensors copied, {len(fresh)} fresh")
        if self.config.train.sync_bn and self.world.is_distributed:
            convert_sync_batchnorm(model, self.device)  # in place, before freezing (which keeps the trunk's modules)
        model.freeze_trunk(cfg.freeze_layers)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def build_model_card(self, model: ReidModel) -> ModelCard:
        """What the checkpoints say about ``model``: how to rebuild it, what it takes in, where it started from."""
        cfg = self.config
        backbone_init = backbone_init_label(cfg.model.pretrained)
        if cfg.model.init_checkpoint:
            backbone_init = f"{cfg.model.init_checkpoint} (from {backbone_init})"
        return ModelCard(
            spec=asdict(model.spec),
            input_size=(cfg.data.height, cfg.data.width),
            mean=tuple(cfg.data.mean),  # type: ignore[arg-type]
            std=tuple(cfg.data.std),  # type: ignore[arg-type]
            backbone_init=backbone_init,
        )

    def build_optimizer(self, model: ReidModel) -> Optimizer:
        """``optim.*``'s optimiser over ``model``'s trainable parameters (``reidkit.training.optim``)."""
        return build_optimizer(model, self.config.optim, self.device)

    def build_scheduler(self, optimizer: Optimizer) -> LRScheduler:
        """``optim.*``'s per-epoch learning-rate schedule; stepped once after every epoch, saved in ``last.pt``."""
        return build_scheduler(optimizer, self.config.optim)

    def build_train_batches(
        self, dataset: ReidDataset, pid_to_label: dict[int, int]
    ) -> tuple[BatchSource, int]:
        """The P x K batches of each epoch (this rank's share of them) and the steps an epoch has.

        Each epoch's batches are a pure function of (``train.seed``, epoch): the first half of the resume contract.
        """
        cfg, world = self.config, self.world
        sampler = PKSampler(
            [pid_to_label[r.pid] for r in dataset.train],
            cfg.data.ids_per_batch,
            cfg.data.images_per_id,
            seed=cfg.train.seed,
            rank=world.rank,
            world_size=world.world_size,
        )
        batches = build_batch_source(
            cfg.data, cfg.train.seed, dataset.train, pid_to_label, sampler, self.device, progress=cfg.train.progress
        )
        return batches, sampler.num_batches

    def build_loss(self, attribute_targets: AttributeLoss | None = None) -> ReidLoss:
        """``loss.*``: softmax + triplet over the heads' outputs, plus the attribute loss where the run has labels
        (wrapped to see the global batch when distributed)."""
        cfg = self.config.loss
        return ReidLoss(
            LossWeights(softmax=cfg.softmax, triplet=cfg.triplet, attribute=cfg.attribute),
            label_smoothing=cfg.label_smoothing,
            triplet_margin=None if cfg.soft_margin else cfg.triplet_margin,
            head_reduction=cfg.head_reduction,
            attributes=attribute_targets,
        )

    def build_evaluator(self, model: ReidModel, card: ModelCard) -> FeatureExtractor | ShardedExtractor:
        """What evaluation extracts features with: ``model`` itself (no copy), shared out among the ranks."""
        extractor = evaluation_extractor(model, card, self.config, self.device)
        return ShardedExtractor(extractor, self.world) if self.world.is_distributed else extractor

    def build_hooks(self, extractor: FeatureExtractor | ShardedExtractor, dataset: ReidDataset) -> list[Hook]:
        """The hooks ``train.*`` asks for (``default_hooks``, their writers from ``build_writers``), then the
        ``hooks`` given to the trainer, which therefore see each epoch evaluated, logged and checkpointed."""
        return [*default_hooks(self.config, extractor, dataset, self.build_writers()), *self.hooks]

    def build_writers(self) -> list[MetricsWriter]:
        """Where the run's records go: ``metrics.csv`` / ``summary.json`` / ``curves.png``, TensorBoard (if
        ``train.tensorboard``) and the console (``echo``)."""
        cfg = self.config
        writers: list[MetricsWriter] = [RunFilesWriter(title=f"{cfg.model.name}/{cfg.model.backbone}")]
        if cfg.train.tensorboard:
            writers.append(TensorBoardWriter())
        writers.append(ConsoleWriter(self.echo))
        return writers

    def wrap_model(self, model: ReidModel) -> nn.Module:
        """The single place the training model is wrapped: ``DistributedDataParallel``, then ``torch.compile``."""
        wrapped: nn.Module = model
        if self.world.is_distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.device] if self.device.type == "cuda" else None,
                # Global BatchNorm keeps every rank's statistics equal already; otherwise rank 0's are the model's.
                forward_sync_buffers=not self.config.train.sync_bn,
            )
        if self.config.train.compile:
            return torch.compile(wrapped)  # type: ignore[return-value]
        return wrapped

    def _resume_payload(self, out: Path) -> dict[str, Any]:
        path = out / LAST
        if not path.exists():
            raise ConfigError(f"--resume: {path} does not exist; nothing to resume in train.output_dir={out}")
        payload = load_checkpoint(path)
        if "training_state" not in payload:
            raise ConfigError(f"--resume: {path} holds weights only (no optimiser state); it cannot be resumed")
        # Read through the config schema first, so that a key added to reidkit since the run was saved compares
        # as its default rather than as a change.
        saved = config_from_dict(payload["config"], str(path)).to_dict()
        conflicts = [key for key in _changed_keys(saved, self.config.to_dict()) if key not in RESUMABLE_CHANGES]
        if conflicts:
            raise ConfigError(
                f"--resume: the config differs from the one {path} was trained with in {', '.join(conflicts)}; "
                "resume with the original settings (only run length, evaluation and logging may change)"
            )
        return payload


def attribute_targets(labels: AttributeLabels, pid_to_label: dict[int, int]) -> AttributeLoss:
    """The attribute loss over the training classes: class ``pid_to_label[pid]`` takes ``pid``'s labels."""
    pids = sorted(pid_to_label, key=pid_to_label.__getitem__)
    unlabelled = [pid for pid in pids if pid not in labels.by_pid]
    if len(unlabelled) == len(pids):
        raise DatasetError(f"{labels.source}: labels none of the training identities; wrong file for this dataset?")
    table = torch.from_numpy(labels.table(pids, MISSING))
    return AttributeLoss(table, labels.schema.sizes)


def _silent(_: str) -> None:
    """The echo of every rank but the main one."""


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "kwargs" and key != "dataset_options":
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
