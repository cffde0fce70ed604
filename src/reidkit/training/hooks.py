"""What a training run does around its steps, one hook each: evaluation, checkpoints, best model, logs, time budget.

``TrainLoop`` (``reidkit.training.loop``) only trains; everything else a run does is a ``Hook`` it calls at fixed
points. Keeping each duty in its own small class lets it be tested alone, lets a user add one without touching
the loop, and gives multi-process training its one switch: a hook with ``main_process_only = True`` (writing
files, logging) is skipped on every process but the main one. Evaluation and the time budget run on every process:
the first shares its feature extraction out among the ranks, the second must stop them all at the same step.

Order matters where hooks read what others wrote: ``default_hooks`` evaluates first (its metrics land in the
epoch's history row), then hands the epoch's record to the writers (``LogMetrics``), then checkpoints (the row and
metrics go into ``last.pt``), then keeps the best model, and reports a spent time budget last.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reidkit.config import ExperimentConfig
from reidkit.data import ReidDataset
from reidkit.inference import FeatureExtractor, evaluate_on_dataset
from reidkit.models.model_file import save_checkpoint
from reidkit.training.distributed import ShardedExtractor, any_rank, gather_objects
from reidkit.training.writers import EpochRecord, MetricsWriter, RunRecord

if TYPE_CHECKING:
    from reidkit.training.loop import TrainLoop

LAST, BEST = "last.pt", "best.pt"
EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


class Hook:
    """A no-op at every point of the loop; subclasses override the points they need.

    ``main_process_only``: skip this hook on every process but the main one (``loop.is_main_process``). Set it as
    a class attribute, or on one instance to change a single hook.
    """

    main_process_only: bool = False

    def before_train(self, loop: TrainLoop) -> None:
        """Once, before the first epoch of this call (after any resume state is loaded)."""

    def before_epoch(self, loop: TrainLoop) -> None:
        """Before the steps of epoch ``loop.epoch`` (0-based)."""

    def after_step(self, loop: TrainLoop) -> None:
        """After every optimisation step; ``loop.window`` holds the means of the logging window this step closed
        (None on other steps)."""

    def after_epoch(self, loop: TrainLoop) -> None:
        """After the epoch's steps and schedule update; its row is ``loop.history[-1]``."""

    def after_train(self, loop: TrainLoop) -> None:
        """Always, even when training raised (release resources here); ``loop.finished`` says whether it completed."""


class EvaluateWhenDue(Hook):
    """Evaluates on the dataset's query/gallery split every ``every`` epochs and after the last one.

    The metrics go into the epoch's history row and ``loop.metrics`` (which the writers print and log); the whole
    run into ``loop.final_eval``. It runs on every process: in a multi-process run the trainer passes a
    ``ShardedExtractor``, so each rank extracts a share of the crops, all get every feature back and score the same
    numbers (so every rank's history agrees).
    """

    def __init__(
        self,
        extractor: FeatureExtractor | ShardedExtractor,
        dataset: ReidDataset,
        every: int,
        metric: str = "euclidean",
    ):
        self.extractor, self.dataset, self.every, self.metric = extractor, dataset, every, metric

    def after_epoch(self, loop: TrainLoop) -> None:
        if not (loop.is_last_epoch or (loop.epoch + 1) % self.every == 0):
            return
        run = evaluate_on_dataset(self.extractor, self.dataset, metric=self.metric)
        loop.final_eval, loop.metrics = run, run.summary
        loop.history[-1].update({key: run.summary[key] for key in EVAL_KEYS})


class SaveCheckpoint(Hook):
    """Writes the resumable checkpoint (model, optimiser, schedule, scaler, RNG, history) after every epoch.

    ``save_checkpoint`` writes atomically, so a run killed at any moment leaves the previous epoch's file whole.
    """

    main_process_only = True

    def __init__(self, name: str = LAST) -> None:
        self.name = name

    def after_epoch(self, loop: TrainLoop) -> None:
        save_checkpoint(loop.output_dir / self.name, loop.checkpoint_payload())


class KeepBestModel(Hook):
    """Writes the epoch's checkpoint as ``name`` whenever its ``metric`` beats every earlier evaluated epoch.

    The best value so far is read back from the history on ``before_train``, so a resumed run does not replace a
    better model of its first part.
    """

    main_process_only = True

    def __init__(self, name: str = BEST, metric: str = "mAP") -> None:
        self.name, self.metric = name, metric
        self.best = float("-inf")

    def before_train(self, loop: TrainLoop) -> None:
        values = [row[self.metric] for row in loop.history if row.get(self.metric) is not None]
        self.best = max(values, default=float("-inf"))

    def after_epoch(self, loop: TrainLoop) -> None:
        value = loop.history[-1].get(self.metric)
        if value is not None and value > self.best:
            self.best = value
            save_checkpoint(loop.output_dir / self.name, loop.checkpoint_payload())


class LogMetrics(Hook):
    """Hands each logging window's and each epoch's record to ``writers`` (``reidkit.training.writers``).

    The one place records reach writers: after evaluation (so an epoch's record holds its metrics) and before the
    checkpoint. Main process only, like every writer of files or lines.
    """

    main_process_only = True

    def __init__(self, writers: Sequence[MetricsWriter]) -> None:
        self.writers = list(writers)

    def before_train(self, loop: TrainLoop) -> None:
        resume_step = loop.start_epoch * loop.steps_per_epoch if loop.start_epoch else None
        for writer in self.writers:
            writer.open(loop.output_dir, resume_step)

    def after_step(self, loop: TrainLoop) -> None:
        if loop.window is not None:
            for writer in self.writers:
                writer.write_step(loop.window)

    def after_epoch(self, loop: TrainLoop) -> None:
        row = loop.history[-1]
        evaluated = "rank1" in row  # EvaluateWhenDue ran this epoch: its metrics are in the row, its summary in metrics
        record = EpochRecord(row, loop.history, loop.epochs, loop.metrics if evaluated else None)
        for writer in self.writers:
            writer.write_epoch(record)

    def after_train(self, loop: TrainLoop) -> None:
        run = RunRecord(loop.history, loop.metrics, loop.step_log) if loop.finished else None
        for writer in self.writers:
            writer.close(run)


class TimeBudget(Hook):
    """Stops training after the step that crosses ``seconds`` of wall-clock time since ``before_train``.

    The loop then finishes that epoch as the last one (evaluated and checkpointed) and the run reports
    ``stopped_early``. Runs on every process: in a multi-process run all of them must stop at the same step, so
    each step the ranks agree (an all-reduce of the flag: one tiny collective per step, only with a budget).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.spent_in: int | None = None  # the 0-based epoch during which the budget ran out

    def before_train(self, loop: TrainLoop) -> None:
        self.started = time.monotonic()
        self.spent_in = None

    def after_step(self, loop: TrainLoop) -> None:
        if any_rank(time.monotonic() - self.started > self.seconds, loop.step.device):
            self.spent_in = loop.epoch
            loop.request_stop()

    def after_epoch(self, loop: TrainLoop) -> None:
        if self.spent_in == loop.epoch:
            loop.echo(f"time budget of {self.seconds:g}s reached during epoch {loop.epoch + 1}")


class FitScheduleToBudget(Hook):
    """After the first epoch of a fresh run, shortens it to the epochs that fit in ``seconds`` at that epoch's pace
    (``TrainLoop.shorten``: the cosine then ends with the last epoch that fits).

    A run cut off by ``TimeBudget`` mid-cosine ends at a high learning rate, so on a slower machine the same recipe
    gives a worse model; fitting the schedule instead keeps the run's shape and spends the budget on fewer, complete
    epochs. The first epoch's time includes its set-up, so the estimate errs towards fewer epochs; ``TimeBudget``
    stays in force as the hard stop. Every process takes the smallest fit of any rank, so all stop together.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def before_train(self, loop: TrainLoop) -> None:
        self.started = time.monotonic()

    def after_epoch(self, loop: TrainLoop) -> None:
        if loop.epoch != 0 or loop.is_last_epoch:  # decided once, on the first epoch of a fresh run
            return
        epoch_s = time.monotonic() - self.started
        fit = min(gather_objects(max(1, int(self.seconds // epoch_s))))
        if fit < loop.epochs:
            loop.echo(
                f"time budget: {fit} of {loop.epochs} epochs fit in {self.seconds:g}s at {epoch_s:.0f}s an epoch; "
                f"the run and its learning-rate schedule now end after epoch {fit}"
            )
            loop.shorten(fit)


def default_hooks(
    config: ExperimentConfig,
    extractor: FeatureExtractor | ShardedExtractor,
    dataset: ReidDataset,
    writers: Sequence[MetricsWriter],
) -> list[Hook]:
    """What ``reidkit train`` runs: the hooks ``config.train`` asks for, in the order they depend on each other,
    with ``writers`` receiving the run's records."""
    train = config.train
    hooks: list[Hook] = []
    if train.fit_schedule_to_budget and train.max_train_seconds is not None:
        hooks.append(FitScheduleToBudget(train.max_train_seconds))  # first: the others see the epoch as the last
    if dataset.query:  # a dataset without a query split (adaptation to a store's own tracks) has nothing to test
        hooks.append(EvaluateWhenDue(extractor, dataset, every=train.eval_every, metric=train.eval_metric))
    hooks += [
        LogMetrics(writers),
        SaveCheckpoint(),
        KeepBestModel(),
    ]
    if train.max_train_seconds is not None:
        hooks.append(TimeBudget(train.max_train_seconds))
    return hooks
