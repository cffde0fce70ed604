"""The training loop: P x K batches, softmax + triplet loss, periodic Market-1501 evaluation, resumable checkpoints.

Reproducibility contract: every epoch's data randomness (which crops form which batch, and every augmentation
draw) is a pure function of (``train.seed``, epoch), and everything else that evolves (weights, optimiser,
schedule, grad scaler, global RNGs) is in ``last.pt``. So a run killed at any point and resumed with ``--resume``
continues exactly as if it had never stopped (bit for bit on CPU; on GPU, up to cuDNN's own non-determinism).

Distributed training is not implemented, but its two seams are here: the sampler already takes ``rank`` and
``world_size``, and ``_wrap_model`` is the one place where a ``DistributedDataParallel`` wrapper would go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from reidkit.config import ExperimentConfig, save_config
from reidkit.data import PKSampler, ReidDataset, load_dataset, relabel, verify_images
from reidkit.errors import ConfigError, DatasetError
from reidkit.inference import EvalRun, FeatureExtractor, evaluate_on_dataset
from reidkit.losses import LossWeights, ReidLoss
from reidkit.models import ReidModel, build_model
from reidkit.training.batches import build_batch_source
from reidkit.models.model_file import ModelCard, backbone_init_label, load_checkpoint, model_payload, save_checkpoint
from reidkit.training.metrics_log import MetricsLog
from reidkit.training.resume_state import capture_rng_state, restore_rng_state
from reidkit.training.optim import build_optimizer, build_scheduler
from reidkit.training.runtime import resolve_amp, resolve_device, resolve_eval_backend, seed_everything
from reidkit.training.step import TrainStep


LAST, BEST = "last.pt", "best.pt"
EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
# Keys that may differ between a run and its resumption: they change how long or how verbosely it runs, not what
# any epoch computes.
RESUMABLE_CHANGES = frozenset(
    {"train.epochs", "train.max_train_seconds", "train.eval_every", "train.progress", "train.log_every",
     "train.tensorboard", "train.eval_backend", "data.workers", "data.test_batch_size"}
)


@dataclass
class TrainResult:
    """``final_eval`` is the last evaluation of this call (None if it ran no epoch), with its distance matrix."""

    output_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    epochs_done: int
    stopped_early: bool
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    final_eval: EvalRun | None


class Trainer:
    """Runs one ``ExperimentConfig``; ``dataset`` may be passed in to skip reading it from ``data.root`` again."""

    def __init__(
        self,
        config: ExperimentConfig,
        dataset: ReidDataset | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.echo = echo
        self._dataset = dataset
        self.rank, self.world_size = 0, 1
        # Loss averaged over each window of train.log_every steps: the curves of runs too short for per-epoch points.
        self.step_log: list[dict[str, float]] = []

    def fit(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        out = Path(cfg.train.output_dir)
        payload = self._resume_payload(out) if resume else None
        if payload is None and (out / LAST).exists():
            raise ConfigError(
                f"{out / LAST} exists: train.output_dir already holds a run; pass --resume to continue it or "
                "choose another train.output_dir"
            )
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        device = resolve_device(cfg.train.device)
        amp_dtype = resolve_amp(cfg.train.amp, device)
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
        )
        model = build_model(
            cfg.model.name,
            num_classes=len(pid_to_label),
            backbone=cfg.model.backbone,
            pretrained=cfg.model.pretrained,
            kwargs=cfg.model.kwargs,
        )
        model.freeze_trunk(cfg.model.freeze_layers)
        card = ModelCard(
            spec=asdict(model.spec),
            input_size=(cfg.data.height, cfg.data.width),
            mean=tuple(cfg.data.mean),  # type: ignore[arg-type]
            std=tuple(cfg.data.std),  # type: ignore[arg-type]
            backbone_init=backbone_init_label(cfg.model.pretrained),
        )
        model.to(device)
        if cfg.train.channels_last and device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, cfg.optim, device)
        scheduler = build_scheduler(optimizer, cfg.optim)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        history: list[dict[str, Any]] = []
        self.step_log = []
        start_epoch = 0
        if payload is not None:
            model.load_state_dict(payload["model"]["state_dict"])
            state = payload["training_state"]
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            restore_rng_state(state["rng"])
            history = list(payload["history"])
            self.step_log = list(payload["step_log"])
            start_epoch = int(payload["epoch"])
            self.echo(f"resuming {out / LAST} after epoch {start_epoch}")

        sampler = PKSampler(
            labels,
            cfg.data.ids_per_batch,
            cfg.data.images_per_id,
            seed=cfg.train.seed,
            rank=self.rank,
            world_size=self.world_size,
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
        extractor = FeatureExtractor(
            model,
            device=device,
            batch_size=cfg.data.test_batch_size,
            flip=cfg.train.eval_flip,
            card=card,
            workers=cfg.data.workers,
            progress=cfg.train.progress,
            backend=resolve_eval_backend(cfg.train.eval_backend, device),
        )
        step = TrainStep(
            self._wrap_model(model), loss_fn, optimizer, scaler, amp_dtype, device, cfg.train.channels_last
        )
        steps_per_epoch = sampler.num_batches
        log = MetricsLog(out, cfg.train.tensorboard, resume_step=start_epoch * steps_per_epoch if payload else None)
        best_map = max((row["mAP"] for row in history if row.get("mAP") is not None), default=-1.0)
        started = time.monotonic()
        stopped_early = False
        metrics: dict[str, Any] = dict(payload["metrics"]) if payload else {}
        final_eval = None
        try:
            for epoch in range(start_epoch, cfg.train.epochs):
                row, stopped_early = self._train_epoch(epoch, step, batches(epoch), steps_per_epoch, log, started)
                scheduler.step()
                last_epoch = stopped_early or epoch + 1 == cfg.train.epochs
                if last_epoch or (epoch + 1) % cfg.train.eval_every == 0:
                    final_eval = evaluate_on_dataset(extractor, dataset, metric=cfg.train.eval_metric)
                    metrics = final_eval.summary
                    row.update({key: metrics[key] for key in EVAL_KEYS})
                    self.echo(
                        f"epoch {epoch + 1}: rank1 {metrics['rank1']:.2%}  mAP {metrics['mAP']:.2%}  "
                        f"({metrics['num_query']} queries, {metrics['num_gallery']} gallery)"
                    )
                history.append(row)
                log.epoch(history)
                checkpoint = {
                    **model_payload(model, card),
                    "config": cfg.to_dict(),
                    "epoch": epoch + 1,
                    "metrics": metrics,
                    "history": history,
                    "step_log": self.step_log,
                    "training_state": {
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "rng": capture_rng_state(),
                        "stopped_early": stopped_early,
                    },
                }
                save_checkpoint(out / LAST, checkpoint)
                if row.get("mAP") is not None and row["mAP"] > best_map:
                    best_map = row["mAP"]
                    save_checkpoint(out / BEST, checkpoint)
                if stopped_early:
                    self.echo(f"time budget of {cfg.train.max_train_seconds:g}s reached during epoch {epoch + 1}")
                    break
        finally:
            log.close()
        (out / "summary.json").write_text(json.dumps({"epochs": len(history), "metrics": metrics}, indent=2))
        self._plot(out, history)
        return TrainResult(
            output_dir=out,
            last_checkpoint=out / LAST,
            best_checkpoint=out / BEST if (out / BEST).exists() else None,
            epochs_done=len(history),
            stopped_early=stopped_early,
            metrics=metrics,
            history=history,
            final_eval=final_eval,
        )

    def _train_epoch(
        self,
        epoch: int,
        step: TrainStep,
        batches: Iterator[tuple[Tensor, Tensor]],
        steps: int,
        log: MetricsLog,
        started: float,
    ) -> tuple[dict[str, Any], bool]:
        cfg = self.config
        step.model.train()
        budget = cfg.train.max_train_seconds
        lr = step.optimizer.param_groups[-1]["lr"]
        sums = torch.zeros(4, device=step.device)  # total, softmax, triplet, accuracy: summed on device, read rarely
        window, window_start = torch.zeros(3, device=step.device), 0
        done_steps = images_seen = 0
        stopped = False
        epoch_start = time.perf_counter()
        bar = tqdm(
            batches, total=steps, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="step",
            disable=not cfg.train.progress, leave=False,
        )
        for images, targets in bar:
            losses = step(images, targets)
            accuracy = losses.accuracy if losses.accuracy is not None else torch.zeros((), device=step.device)
            values = torch.stack([losses.total, losses.softmax, losses.triplet, accuracy]).detach().float()
            sums += values
            window += values[:3]
            done_steps += 1
            images_seen += images.shape[0]
            if done_steps % cfg.train.log_every == 0 or done_steps == steps:
                rate = images_seen / (time.perf_counter() - epoch_start)
                total, softmax, triplet = (window / (done_steps - window_start)).tolist()
                window, window_start = torch.zeros_like(window), done_steps
                self.step_log.append({
                    "epoch": epoch + done_steps / steps,
                    "loss": total,
                    "softmax_loss": softmax,
                    "triplet_loss": triplet,
                })
                bar.set_postfix(loss=f"{total:.3f}", img_s=f"{rate:.0f}")
                log.step(epoch * steps + done_steps, {"loss": total, "lr": lr, "images_per_s": rate})
            if budget is not None and time.monotonic() - started > budget:
                stopped = True
                break
        bar.close()
        if done_steps == 0:
            raise DatasetError("the training set produced no batch; lower data.ids_per_batch / images_per_id")
        seconds = time.perf_counter() - epoch_start
        means = (sums / done_steps).tolist()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "steps": done_steps,
            "lr": lr,
            "loss": means[0],
            "softmax_loss": means[1],
            "triplet_loss": means[2],
            "train_accuracy": means[3],
            "images_per_s": images_seen / seconds,
            "epoch_seconds": seconds,
        }
        self.echo(
            f"epoch {epoch + 1}/{cfg.train.epochs}: loss {means[0]:.4f} (softmax {means[1]:.4f}, "
            f"triplet {means[2]:.4f}), {images_seen / seconds:.0f} img/s, lr {lr:.2e}"
        )
        return row, stopped

    def _wrap_model(self, model: ReidModel) -> nn.Module:
        """The single place the training model is wrapped (``torch.compile`` now; DDP would go here too)."""
        if self.config.train.compile:
            return torch.compile(model)  # type: ignore[return-value]
        return model

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
        conflicts = [
            key for key in _changed_keys(payload["config"], self.config.to_dict()) if key not in RESUMABLE_CHANGES
        ]
        if conflicts:
            raise ConfigError(
                f"--resume: the config differs from the one {path} was trained with in {', '.join(conflicts)}; "
                "resume with the original settings (only run length, evaluation and logging may change)"
            )
        return payload

    def _plot(self, out: Path, history: list[dict[str, Any]]) -> None:
        from reidkit.viz.curves import plot_training_curves

        plot_training_curves(
            history,
            out / "curves.png",
            title=f"{self.config.model.name}/{self.config.model.backbone}",
            step_log=self.step_log,
        )


def subset_identities(dataset: ReidDataset, max_train_ids: int | None, max_test_ids: int | None) -> ReidDataset:
    """Keep the first ``max_train_ids`` train identities and ``max_test_ids`` query identities (in pid order).

    For quick runs and tests: the test subset keeps every gallery crop of the chosen identities plus the gallery's
    distractors, so the protocol is unchanged, only smaller.
    """
    train, query, gallery = dataset.train, dataset.query, dataset.gallery
    if max_train_ids is not None:
        keep = set(sorted({r.pid for r in train})[:max_train_ids])
        train = [r for r in train if r.pid in keep]
    if max_test_ids is not None:
        keep = set(sorted({r.pid for r in query})[:max_test_ids])
        query = [r for r in query if r.pid in keep]
        gallery = [r for r in gallery if r.pid in keep or r.pid == 0]
    multi_query = [r for r in dataset.multi_query if r.pid in {q.pid for q in query}]
    return replace(dataset, train=train, query=query, gallery=gallery, multi_query=multi_query)


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "kwargs" and key != "dataset_options":
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
