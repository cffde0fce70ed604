"""A training run from its config: P x K batches, softmax + triplet loss, periodic Market-1501 evaluation,
resumable checkpoints.

``Trainer`` builds the pieces (data, model, optimiser, batches, evaluation) and hands them to ``TrainLoop``
(``loop.py``) with the hooks the config asks for (``hooks.py``); ``fit`` returns what the run did.

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

from reidkit.config import ExperimentConfig, config_from_dict, save_config
from reidkit.data import PKSampler, ReidDataset, load_dataset, relabel, verify_images
from reidkit.data.subset import subset_identities
from reidkit.errors import ConfigError, DatasetError
from reidkit.inference import EvalRun
from reidkit.losses import LossWeights, ReidLoss
from reidkit.models import ReidModel, build_model
from reidkit.models.model_file import ModelCard, backbone_init_label, load_checkpoint, load_matching_weights
from reidkit.training.batches import build_batch_source
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
    epoch evaluated and checkpointed.
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
        loop = self._build_loop()
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

    def _build_loop(self) -> TrainLoop:
        """Data, model, optimiser, batches and evaluation for ``self.config``, wired into a loop with its hooks."""
        cfg, world = self.config, self.world
        device = world.device(resolve_device(cfg.train.device))
        amp_dtype = resolve_amp(cfg.train.amp, device)
        if cpu_bf16_fallback(cfg.train.amp, device):
            self.echo("train.amp=bf16: this CPU has no native bf16 (AMX / AVX512-BF16); training in full precision")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        seed_everything(cfg.train.seed)

        dataset = self._load_dataset()
        pid_to_label = relabel(dataset.train)
        labels = [pid_to_label[r.pid] for r in dataset.train]
        self.echo(
            f"training {cfg.model.name}/{cfg.model.backbone} on {dataset.name}: {len(pid_to_label)} ids, "
            f"{len(dataset.train)} images, {cfg.data.height}x{cfg.data.width}, device {device}, "
            f"amp {amp_dtype or 'none'}"
            + (f", {world.world_size} processes" if world.is_distributed else "")
        )
        model = build_model(
            cfg.model.name,
            num_classes=len(pid_to_label),
            backbone=cfg.model.backbone,
            pretrained=cfg.model.pretrained,
            kwargs=cfg.model.kwargs,
        )
        backbone_init = backbone_init_label(cfg.model.pretrained)
        if cfg.model.init_checkpoint:
            copied, fresh = load_matching_weights(model, cfg.model.init_checkpoint)
            backbone_init = f"{cfg.model.init_checkpoint} (from {backbone_init})"
            self.echo(f"started from {cfg.model.init_checkpoint}: {copied} tensors copied, {len(fresh)} fresh")
        if cfg.train.sync_bn and world.is_distributed:
            convert_sync_batchnorm(model, device)  # in place, before freezing (which keeps the trunk's modules)
        model.freeze_trunk(cfg.model.freeze_layers)
        card = ModelCard(
            spec=asdict(model.spec),
            input_size=(cfg.data.height, cfg.data.width),
            mean=tuple(cfg.data.mean),  # type: ignore[arg-type]
            std=tuple(cfg.data.std),  # type: ignore[arg-type]
            backbone_init=backbone_init,
        )
        model.to(device)
        # cuDNN prefers channels_last; on a CPU it is used with native bf16 only, the combination measured (the demo:
        # 249 against 337 ms a step). In full precision on a CPU it broke the two-process run's equality with one
        # process (global BatchNorm; benchmarks/RESULTS.md), so float32 CPU runs stay contiguous.
        channels_last = cfg.train.channels_last and (device.type == "cuda" or amp_dtype == torch.bfloat16)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, cfg.optim, device)
        scheduler = build_scheduler(optimizer, cfg.optim)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        sampler = PKSampler(
            labels,
            cfg.data.ids_per_batch,
            cfg.data.images_per_id,
            seed=cfg.train.seed,
            rank=world.rank,
            world_size=world.world_size,
        )
        batches = build_batch_source(
            cfg.data, cfg.train.seed, dataset.train, pid_to_label, sampler, device, progress=cfg.train.progress
        )
        loss_fn = ReidLoss(
            LossWeights(softmax=cfg.loss.softmax, triplet=cfg.loss.triplet),
            label_smoothing=cfg.loss.label_smoothing,
            triplet_margin=None if cfg.loss.soft_margin else cfg.loss.triplet_margin,
            head_reduction=cfg.loss.head_reduction,
        )
        extractor = evaluation_extractor(model, card, cfg, device)
        step = TrainStep(
            self._wrap_model(model, device),
            GlobalBatchLoss(loss_fn) if world.is_distributed else loss_fn,
            optimizer, scaler, amp_dtype, device, channels_last,
        )
        return TrainLoop(
            cfg,
            step,
            scheduler,
            batches,
            sampler.num_batches,
            card,
            hooks=[
                *default_hooks(cfg, ShardedExtractor(extractor, world) if world.is_distributed else extractor, dataset),
                *self.hooks,
            ],
            echo=self.echo,
            world=world,
        )

    def _wrap_model(self, model: ReidModel, device: torch.device) -> nn.Module:
        """The single place the training model is wrapped: ``DistributedDataParallel``, then ``torch.compile``."""
        wrapped: nn.Module = model
        if self.world.is_distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[device] if device.type == "cuda" else None,
                # Global BatchNorm keeps every rank's statistics equal already; otherwise rank 0's are the model's.
                forward_sync_buffers=not self.config.train.sync_bn,
            )
        if self.config.train.compile:
            return torch.compile(wrapped)  # type: ignore[return-value]
        return wrapped

    def _load_dataset(self) -> ReidDataset:
        d = self.config.data
        dataset = self._dataset or load_dataset(d.dataset, Path(d.root), **d.dataset_options)
        dataset = subset_identities(dataset, d.max_train_ids, d.max_test_ids)
        if not dataset.train:
            raise DatasetError(f"{dataset.root}: the training split is empty; check data.root")
        # Query/gallery crops are read in the extractor, which reports a bad file as one line; a header check
        # here catches missing or non-image files before any time is spent training.
        verify_images(dataset.query + dataset.gallery, mode="header")
        return dataset

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
