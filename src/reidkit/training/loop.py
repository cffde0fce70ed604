"""The training loop itself: epochs of optimisation steps, with hooks (``reidkit.training.hooks``) around them.

The loop owns what training evolves and what resuming needs back (weights, optimiser, schedule, grad scaler,
global RNGs, history, step log): ``checkpoint_payload`` writes it out and ``resume_from`` reads it in. Everything
else a run does (evaluation, files, logs, budgets) is a hook, so the loop stays the same when those change.

In a multi-process run (``world``) the loop does the two things that need every rank at a fixed point: when an
epoch's steps end it gathers each rank's RNG states (so rank 0's checkpoint can restore every rank), and after the
epoch's hooks all ranks wait for each other (so rank 0's files are written before anyone goes on).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from reidkit.config import ExperimentConfig
from reidkit.errors import DatasetError
from reidkit.inference import EvalRun
from reidkit.models.model_file import ModelCard, model_payload, unwrap
from reidkit.training.batches import BatchSource
from reidkit.training.distributed import World, barrier, gather_objects
from reidkit.training.hooks import Hook
from reidkit.training.optim import lr_factor
from reidkit.training.resume_state import capture_rng_state, restore_rng_state
from reidkit.training.step import TrainStep
from reidkit.training.writers import StepRecord


class TrainLoop:
    """Runs epochs ``start_epoch .. config.train.epochs - 1`` of ``step`` over ``batches(epoch)``, calling ``hooks``.

    Hooks read and write the run's state here: ``epoch`` (0-based, the one running or just run), ``history`` (one
    row per epoch: the epoch's record, which evaluation completes), ``metrics`` / ``final_eval`` (the latest
    evaluation), ``window`` (the ``StepRecord`` of a logging window) and ``global_step`` (in ``after_step``). The loop
    itself prints nothing per epoch: the ``LogMetrics`` hook hands the records to the writers. A hook ends training
    with ``request_stop()``: the loop stops after the current step and finishes that epoch (``after_epoch`` hooks
    included) as the last one.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        step: TrainStep,
        scheduler: LRScheduler,
        batches: BatchSource,
        steps_per_epoch: int,
        card: ModelCard,
        hooks: Sequence[Hook] = (),
        echo: Callable[[str], None] = print,
        world: World = World(),
    ) -> None:
        self.config, self.step, self.scheduler, self.batches = config, step, scheduler, batches
        self.steps_per_epoch, self.card, self.echo = steps_per_epoch, card, echo
        self.hooks = list(hooks)
        self.world = world
        self.output_dir = Path(config.train.output_dir)
        self.start_epoch = self.epoch = 0
        self.history: list[dict[str, Any]] = []
        # Loss averaged over each window of train.log_every steps: the curves of runs too short for per-epoch points.
        self.step_log: list[dict[str, float]] = []
        self.metrics: dict[str, Any] = {}
        self.final_eval: EvalRun | None = None
        self.window: StepRecord | None = None
        self.global_step = 0
        self.fitted_epochs: int | None = None  # set by ``shorten`` (the time budget's fit), kept in the checkpoint
        self.stop_requested = self.finished = False
        self._payload: tuple[int, dict[str, Any]] | None = None
        self._rng_states: list[dict[str, Any]] = []  # every rank's, taken when the epoch's steps ended

    @property
    def is_main_process(self) -> bool:
        return self.world.is_main

    @property
    def epochs(self) -> int:
        """The run's length: ``train.epochs``, or fewer after ``shorten``."""
        return self.fitted_epochs or self.config.train.epochs

    @property
    def is_last_epoch(self) -> bool:
        """Whether the epoch ``loop.epoch`` is the run's last: the configured last one, or a stop was requested."""
        return self.stop_requested or self.epoch + 1 == self.epochs

    def request_stop(self) -> None:
        self.stop_requested = True

    def shorten(self, epochs: int) -> None:
        """End the run after ``epochs`` epochs, with a cosine schedule ending there too (a milestone schedule is
        left as it is). Rates from the next epoch on follow the shorter schedule; the choice is saved with the
        training state, so a resumed run keeps it."""
        epochs = max(epochs, self.start_epoch, self.epoch + 1)  # never below the epochs already run
        self.fitted_epochs = epochs if epochs < self.config.train.epochs else None
        optim = self.config.optim
        if optim.cosine_epochs:
            factor = functools.partial(lr_factor, replace(optim, cosine_epochs=min(optim.cosine_epochs, self.epochs)))
            scheduler = self.scheduler
            scheduler.lr_lambdas = [factor] * len(scheduler.optimizer.param_groups)  # type: ignore[attr-defined]
            for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
                group["lr"] = base * factor(scheduler.last_epoch)

    def run(self) -> None:
        """Train from ``start_epoch``; ``main_process_only`` hooks run only where ``is_main_process``."""
        hooks = [hook for hook in self.hooks if self.is_main_process or not hook.main_process_only]
        try:
            for hook in hooks:
                hook.before_train(self)
            epoch = self.start_epoch
            while epoch < self.epochs:  # not a range: a hook may shorten the run
                self.epoch = epoch
                for hook in hooks:
                    hook.before_epoch(self)
                row = self._train_epoch(hooks)
                self.scheduler.step()
                self.history.append(row)
                self._rng_states = gather_objects(capture_rng_state())
                for hook in hooks:
                    hook.after_epoch(self)
                barrier()
                if self.stop_requested:
                    break
                epoch += 1
            self.finished = True
        finally:
            for hook in hooks:
                hook.after_train(self)

    def checkpoint_payload(self) -> dict[str, Any]:
        """The resumable checkpoint of the epoch just run; built once per epoch, so hooks saving it share one copy.

        Hooks that change what goes in (metrics, history) must therefore run before the first one that asks.
        """
        if self._payload is None or self._payload[0] != self.epoch:
            payload = {
                **model_payload(self.step.model, self.card),
                "config": self.config.to_dict(),
                "epoch": self.epoch + 1,
                "metrics": self.metrics,
                "history": self.history,
                "step_log": self.step_log,
                "training_state": {
                    "optimizer": self.step.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.step.scaler.state_dict(),
                    "rng": self._rng_states[0] if self._rng_states else capture_rng_state(),
                    "stopped_early": self.stop_requested,
                    "fitted_epochs": self.fitted_epochs,
                },
            }
            if self.world.is_distributed:
                payload["training_state"]["rng_per_rank"] = self._rng_states
            self._payload = (self.epoch, payload)
        return self._payload[1]

    def resume_from(self, payload: dict[str, Any]) -> None:
        """Load a ``checkpoint_payload`` back: the next ``run`` continues as if the run had never stopped."""
        unwrap(self.step.model).load_state_dict(payload["model"]["state_dict"])
        state = payload["training_state"]
        self.step.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step.scaler.load_state_dict(state["scaler"])
        states = state.get("rng_per_rank") or [state["rng"]]
        if len(states) != self.world.world_size:
            self.echo(
                f"the checkpoint holds the random states of {len(states)} process(es), this run has "
                f"{self.world.world_size}: states are reused across ranks, so it is not bit-exact with an unbroken run"
            )
        restore_rng_state(states[self.world.rank % len(states)])
        self.history = list(payload["history"])
        self.step_log = list(payload["step_log"])
        self.metrics = dict(payload["metrics"])
        self.start_epoch = int(payload["epoch"])
        if state.get("fitted_epochs"):
            self.shorten(int(state["fitted_epochs"]))

    def _train_epoch(self, hooks: Sequence[Hook]) -> dict[str, Any]:
        """One epoch's steps; returns its history row (mean losses, accuracy, pace, lr): the epoch's record."""
        epoch, steps, step, train = self.epoch, self.steps_per_epoch, self.step, self.config.train
        step.model.train()
        lr = step.optimizer.param_groups[-1]["lr"]
        # total, softmax, triplet, accuracy, attribute loss: summed on device, read rarely
        sums = torch.zeros(5, device=step.device)
        has_attributes = False
        window, window_start = torch.zeros(3, device=step.device), 0
        done_steps = images_seen = 0
        epoch_start = time.perf_counter()
        bar = tqdm(
            self.batches(epoch), total=steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
            disable=not train.progress, leave=False,
        )
        for images, targets in bar:
            losses = step(images, targets)
            zero = torch.zeros((), device=step.device)
            accuracy = losses.accuracy if losses.accuracy is not None else zero
            has_attributes = losses.attribute is not None
            attribute = losses.attribute if losses.attribute is not None else zero
            values = torch.stack([losses.total, losses.softmax, losses.triplet, accuracy, attribute]).detach().float()
            sums += values
            window += values[:3]
            done_steps += 1
            images_seen += images.shape[0] * self.world.world_size
            self.window = None
            self.global_step = epoch * steps + done_steps
            if done_steps % train.log_every == 0 or done_steps == steps:
                total, softmax, triplet = (window / (done_steps - window_start)).tolist()
                window, window_start = torch.zeros_like(window), done_steps
                self.window = StepRecord(
                    self.global_step, epoch + done_steps / steps, total, softmax, triplet, lr,
                    images_per_s=images_seen / (time.perf_counter() - epoch_start),
                )
                self.step_log.append(self.window.loss_point())
                bar.set_postfix(loss=f"{total:.3f}", img_s=f"{self.window.images_per_s:.0f}")
            for hook in hooks:
                hook.after_step(self)
            if self.stop_requested:
                break
        bar.close()
        if done_steps == 0:
            raise DatasetError("the training set produced no batch; lower data.ids_per_batch / images_per_id")
        seconds = time.perf_counter() - epoch_start
        means = (sums / done_steps).tolist()
        row = {
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
        if has_attributes:
            row["attribute_loss"] = means[4]
        return row
