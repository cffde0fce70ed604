"""Each training hook on its own, around a real loop: a small MGN trained on real tensors, files in tmp_path."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

import pytest
import torch
from torch import Tensor

from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.data import ImageRecord, ReidDataset
from reidkit.inference import FeatureExtractor
from reidkit.losses import LossWeights, ReidLoss
from reidkit.models.model_file import load_checkpoint
from reidkit.training.distributed import World
from reidkit.training.hooks import (
    EvaluateWhenDue,
    FitScheduleToBudget,
    Hook,
    KeepBestModel,
    LogMetrics,
    SaveCheckpoint,
    TimeBudget,
)
from reidkit.training.loop import TrainLoop
from reidkit.training.optim import build_optimizer, build_scheduler
from reidkit.training.step import TrainStep
from reidkit.data.subset import subset_identities
from reidkit.training.trainer import Trainer
from reidkit.training.writers import (
    ConsoleWriter,
    EpochRecord,
    MetricsWriter,
    RunFilesWriter,
    RunRecord,
    StepRecord,
    TensorBoardWriter,
    format_duration,
)

from conftest import scratch_mgn  # tests/ is on sys.path (rootdir conftest)

SIZE = (64, 32)
IDS, PER_ID = 2, 2


def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
    """A fixed function of the epoch, like the real batch sources, so two runs see the same data."""
    generator = torch.Generator().manual_seed(epoch)
    for _ in range(3):
        yield torch.randn(IDS * PER_ID, 3, *SIZE, generator=generator), torch.arange(IDS).repeat_interleave(PER_ID)


def make_loop(
    out: Path, hooks: Sequence[Hook], epochs: int = 2, steps: int = 1, is_main_process: bool = True,
    echo: list[str] | None = None, overrides: Sequence[str] = (),
) -> TrainLoop:
    """``steps`` steps per epoch of a freshly initialised (always the same) MGN-MobileNetV2, writing to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    config = apply_overrides(
        ExperimentConfig(),
        [f"train.output_dir={out}", f"train.epochs={epochs}", "train.progress=false", "train.log_every=1",
         "optim.name=adam", "optim.milestones=[]", *overrides],
    )
    model, card = scratch_mgn(IDS, SIZE)
    optimizer = build_optimizer(model, config.optim, torch.device("cpu"))
    step = TrainStep(
        model, ReidLoss(LossWeights(softmax=1.0, triplet=1.0)), optimizer,
        torch.amp.GradScaler("cpu", enabled=False), None, torch.device("cpu"), channels_last=False,
    )
    lines = echo if echo is not None else []
    return TrainLoop(
        config, step, build_scheduler(optimizer, config.optim), lambda e: islice(batches(e), steps), steps, card,
        hooks=hooks, echo=lines.append, world=World() if is_main_process else World(rank=1, world_size=2),
    )


class Record(Hook):
    """Notes every call as (point, epoch)."""

    def __init__(self, main_process_only: bool = False) -> None:
        self.main_process_only = main_process_only
        self.calls: list[tuple[str, int]] = []

    def before_train(self, loop: TrainLoop) -> None:
        self.calls.append(("before_train", loop.epoch))

    def before_epoch(self, loop: TrainLoop) -> None:
        self.calls.append(("before_epoch", loop.epoch))

    def after_step(self, loop: TrainLoop) -> None:
        self.calls.append(("after_step", loop.epoch))

    def after_epoch(self, loop: TrainLoop) -> None:
        self.calls.append(("after_epoch", loop.epoch))

    def after_train(self, loop: TrainLoop) -> None:
        self.calls.append(("after_train", loop.epoch))


class SetMetric(Hook):
    """Writes a chosen mAP into each epoch's row, as evaluation would (None = not evaluated)."""

    def __init__(self, values: Sequence[float | None]) -> None:
        self.values = values

    def after_epoch(self, loop: TrainLoop) -> None:
        loop.history[-1]["mAP"] = self.values[loop.epoch]


def test_the_loop_calls_each_hook_point_in_order(tmp_path: Path) -> None:
    record = Record()
    loop = make_loop(tmp_path, [record], epochs=2, steps=2)
    loop.run()
    assert record.calls == [
        ("before_train", 0),
        ("before_epoch", 0), ("after_step", 0), ("after_step", 0), ("after_epoch", 0),
        ("before_epoch", 1), ("after_step", 1), ("after_step", 1), ("after_epoch", 1),
        ("after_train", 1),
    ]
    assert [row["steps"] for row in loop.history] == [2, 2] and loop.finished and not loop.stop_requested
    assert len(loop.step_log) == 4  # log_every=1: one window per step


def test_main_process_only_hooks_do_not_run_off_the_main_process(tmp_path: Path) -> None:
    everywhere, main_only = Record(), Record(main_process_only=True)
    make_loop(tmp_path / "worker", [everywhere, main_only], epochs=1, is_main_process=False).run()
    assert everywhere.calls and main_only.calls == []
    # The built-in hooks that write files are main-process-only: a worker process leaves the folder empty.
    make_loop(tmp_path / "worker2", [SaveCheckpoint(), LogMetrics([RunFilesWriter()])], is_main_process=False).run()
    assert not any((tmp_path / "worker2").iterdir())
    main = Record(main_process_only=True)
    make_loop(tmp_path / "main", [main], epochs=1, is_main_process=True).run()
    assert ("after_epoch", 0) in main.calls


def test_after_train_runs_when_training_fails(tmp_path: Path) -> None:
    class Fail(Hook):
        def after_epoch(self, loop: TrainLoop) -> None:
            raise RuntimeError("disk full")

    record, tensorboard = Record(), TensorBoardWriter()
    loop = make_loop(tmp_path, [record, LogMetrics([RunFilesWriter(), tensorboard]), Fail()], epochs=2)
    with pytest.raises(RuntimeError, match="disk full"):
        loop.run()
    assert record.calls[-1] == ("after_train", 0) and not loop.finished
    assert tensorboard.writer is None  # TensorBoard writer closed
    assert (tmp_path / "metrics.csv").is_file() and not (tmp_path / "summary.json").exists()


@pytest.fixture
def tiny_test_split(tmp_path: Path, jpeg) -> ReidDataset:
    """Two query identities, each with two gallery crops from another camera, as real JPEG files."""
    query = [ImageRecord(jpeg(tmp_path / "q" / f"{pid}.jpg", size=SIZE[::-1], seed=pid), pid, 0) for pid in (1, 2)]
    gallery = [
        ImageRecord(jpeg(tmp_path / "g" / f"{pid}_{i}.jpg", size=SIZE[::-1], seed=10 * pid + i), pid, 1)
        for pid in (1, 2) for i in range(2)
    ]
    return ReidDataset("tiny", tmp_path, train=[], query=query, gallery=gallery)


def test_evaluate_when_due_runs_every_n_epochs_and_after_the_last(tmp_path: Path, tiny_test_split) -> None:
    lines: list[str] = []
    loop = make_loop(tmp_path / "run", [], epochs=5, echo=lines)
    extractor = FeatureExtractor(loop.step.model, batch_size=8, card=loop.card, progress=False)
    loop.hooks = [EvaluateWhenDue(extractor, tiny_test_split, every=2), LogMetrics([ConsoleWriter(lines.append)])]
    loop.run()
    evaluated = [row["epoch"] for row in loop.history if "mAP" in row]
    assert evaluated == [2, 4, 5]
    assert loop.final_eval is not None and loop.metrics is loop.final_eval.summary
    assert loop.history[-1]["rank1"] == loop.metrics["rank1"] and loop.metrics["num_query"] == 2
    assert [line.split(":")[0] for line in lines if "mAP" in line] == ["epoch 2", "epoch 4", "epoch 5"]
    # the console writer: each epoch's losses, then the evaluation of an evaluated epoch
    assert [line[:14] for line in lines[:3]] == ["epoch 1/5: los", "epoch 2/5: los", "epoch 2: rank1"]


def test_evaluate_when_due_evaluates_an_epoch_cut_short_as_the_last(tmp_path: Path, tiny_test_split) -> None:
    loop = make_loop(tmp_path / "run", [], epochs=5, steps=2)
    extractor = FeatureExtractor(loop.step.model, batch_size=8, card=loop.card, progress=False)
    loop.hooks = [TimeBudget(0.0), EvaluateWhenDue(extractor, tiny_test_split, every=10)]
    loop.run()
    assert len(loop.history) == 1 and loop.history[0]["steps"] == 1 and "mAP" in loop.history[0]


def test_save_checkpoint_writes_a_checkpoint_that_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight = make_loop(tmp_path / "straight", [SaveCheckpoint()], epochs=2)
    straight.run()
    cut = make_loop(tmp_path / "cut", [SaveCheckpoint()], epochs=1)
    cut.run()
    files = sorted(p.name for p in (tmp_path / "cut").iterdir())
    assert files == ["last.pt"]  # no temporary file left behind
    payload = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert payload["epoch"] == 1 and len(payload["history"]) == 1
    assert set(payload["training_state"]) == {"optimizer", "scheduler", "scaler", "rng", "stopped_early", "fitted_epochs"}

    resumed = make_loop(tmp_path / "cut", [SaveCheckpoint()], epochs=2)
    resumed.resume_from(payload)
    resumed.run()
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key, tensor in a["model"]["state_dict"].items():
        assert torch.equal(tensor, b["model"]["state_dict"][key]), key
    assert [row["loss"] for row in a["history"]] == [row["loss"] for row in b["history"]]


def test_keep_best_model_replaces_the_file_only_when_the_metric_improves(tmp_path: Path) -> None:
    class BestEpoch(Hook):
        """What best.pt holds after each epoch (0 = no file yet)."""

        def __init__(self) -> None:
            self.seen: list[int] = []

        def after_epoch(self, loop: TrainLoop) -> None:
            best = loop.output_dir / "best.pt"
            self.seen.append(load_checkpoint(best)["epoch"] if best.exists() else 0)

    watch = BestEpoch()
    make_loop(tmp_path / "run", [SetMetric([None, 0.2, 0.5, 0.4, 0.5]), KeepBestModel(), watch], epochs=5).run()
    assert watch.seen == [0, 2, 3, 3, 3]  # an equal value (epoch 5) does not replace it either

    # A resumed run starts from the best value in its history, so a worse epoch leaves the earlier best file.
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    resumed = make_loop(tmp_path / "run", [SetMetric([None, 0.2, 0.5, 0.45]), KeepBestModel()], epochs=4)
    resumed.history, resumed.start_epoch = best["history"], best["epoch"]
    resumed.run()
    assert len(resumed.history) == 4 and load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 3


def test_time_budget_stops_after_the_step_that_crosses_it(tmp_path: Path) -> None:
    budget = TimeBudget(600.0)

    class SlowSecondStep(Hook):
        """Step 2 of epoch 2 takes the whole budget: its clock start moves back by that much."""

        def after_step(self, loop: TrainLoop) -> None:
            if loop.global_step == 5:
                budget.started -= budget.seconds

    lines: list[str] = []
    loop = make_loop(tmp_path, [SlowSecondStep(), budget], epochs=3, steps=3, echo=lines)
    loop.run()
    assert [row["steps"] for row in loop.history] == [3, 2]
    assert loop.stop_requested and loop.finished
    assert lines[-1] == "time budget of 600s reached during epoch 2"

    unlimited = make_loop(tmp_path / "unlimited", [TimeBudget(1e6)], epochs=2)
    unlimited.run()
    assert len(unlimited.history) == 2 and not unlimited.stop_requested


class SlowFirstEpoch(Hook):
    """The first epoch's last step takes ``seconds`` more than it did: the fit hook's clock start moves back."""

    def __init__(self, fit: FitScheduleToBudget, seconds: float) -> None:
        self.fit, self.seconds = fit, seconds

    def after_step(self, loop: TrainLoop) -> None:
        if loop.epoch == 0:
            self.fit.started -= self.seconds


def test_fit_schedule_to_budget_shortens_the_run_and_its_cosine(tmp_path: Path) -> None:
    cosine = ["optim.cosine_epochs=4", "optim.lr=0.001"]
    fit = FitScheduleToBudget(600.0)
    lines: list[str] = []
    loop = make_loop(tmp_path / "fit", [SlowFirstEpoch(fit, 230.0), fit, SaveCheckpoint()], epochs=4, echo=lines,
                     overrides=cosine)
    loop.run()
    assert len(loop.history) == 2 and loop.epochs == 2 and not loop.stop_requested
    assert lines[0].startswith("time budget: 2 of 4 epochs fit in 600s at 23")
    # epoch 1 ran at the first epoch's rate of a 4-epoch cosine, epoch 2 at the second epoch's of a 2-epoch one
    assert loop.history[0]["lr"] == pytest.approx(0.001 * 0.5 * (1 + math.cos(math.pi * 0.5 / 4)))
    assert loop.history[1]["lr"] == pytest.approx(0.001 * 0.5 * (1 + math.cos(math.pi * 1.5 / 2)))
    assert load_checkpoint(tmp_path / "fit" / "last.pt")["training_state"]["fitted_epochs"] == 2

    roomy = FitScheduleToBudget(600.0)
    unchanged = make_loop(tmp_path / "roomy", [roomy], epochs=3, overrides=cosine)
    unchanged.run()
    assert len(unchanged.history) == 3 and unchanged.fitted_epochs is None


def test_a_fitted_run_resumes_with_its_fit(tmp_path: Path) -> None:
    cosine = ["optim.cosine_epochs=4"]

    def hooks() -> list[Hook]:
        fit = FitScheduleToBudget(600.0)
        return [SlowFirstEpoch(fit, 180.0), fit, SaveCheckpoint()]  # 600 s // ~181 s = 3 epochs

    straight = make_loop(tmp_path / "straight", hooks(), epochs=4, overrides=cosine)
    straight.run()
    assert len(straight.history) == 3
    cut = make_loop(tmp_path / "cut", [*hooks(), StopAfter(2)], epochs=4, overrides=cosine)
    cut.run()
    payload = load_checkpoint(tmp_path / "cut" / "last.pt")
    resumed = make_loop(tmp_path / "cut", hooks(), epochs=4, overrides=cosine)
    resumed.resume_from(payload)
    assert resumed.epochs == 3
    resumed.run()
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]["state_dict"]
    b = load_checkpoint(tmp_path / "cut" / "last.pt")["model"]["state_dict"]
    assert all(torch.equal(tensor, b[key]) for key, tensor in a.items())
    assert [row["lr"] for row in straight.history] == [row["lr"] for row in resumed.history]


class StopAfter(Hook):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def after_epoch(self, loop: TrainLoop) -> None:
        if loop.epoch + 1 == self.epochs:
            loop.request_stop()


def test_log_metrics_writes_csv_tensorboard_summary_and_curves(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, [SetMetric([0.1, 0.3]), LogMetrics([RunFilesWriter("tiny"), TensorBoardWriter()])],
                     epochs=2)
    loop.run()
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,steps,lr,loss") and rows[0].endswith(",mAP")
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 2
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trainer_runs_extra_hooks_after_evaluation_and_checkpoint(cuhk03_dataset: ReidDataset, tmp_path: Path) -> None:
    class Check(Hook):
        def __init__(self) -> None:
            self.seen: list[tuple[float | None, int]] = []

        def after_epoch(self, loop: TrainLoop) -> None:
            self.seen.append((loop.history[-1].get("mAP"), load_checkpoint(loop.output_dir / "last.pt")["epoch"]))

    config = apply_overrides(
        ExperimentConfig(),
        ["data.height=64", "data.width=32", "data.workers=0", "data.ids_per_batch=4", "data.images_per_id=2",
         "model.backbone=mobilenetv2", "model.pretrained=null", "model.kwargs.part_stride=2", "train.epochs=1",
         f"train.output_dir={tmp_path}", "train.progress=false", "train.tensorboard=false"],
    )
    check = Check()
    result = Trainer(config, dataset=subset_identities(cuhk03_dataset, 4, 2), echo=lambda _: None,
                     hooks=[check]).fit()
    assert check.seen == [(result.metrics["mAP"], 1)]


class RecordingWriter(MetricsWriter):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        self.steps: list[StepRecord] = []
        self.epochs: list[EpochRecord] = []
        self.runs: list[RunRecord | None] = []

    def write_step(self, record: StepRecord) -> None:
        self.steps.append(record)

    def write_epoch(self, record: EpochRecord) -> None:
        self.epochs.append(record)

    def close(self, run: RunRecord | None) -> None:
        self.runs.append(run)


def test_every_writer_is_handed_the_records_the_loop_keeps(tmp_path: Path) -> None:
    mine, lines = RecordingWriter(), []
    loop = make_loop(tmp_path, [SetMetric([0.1, 0.3]), LogMetrics([mine, ConsoleWriter(lines.append)])], epochs=2,
                     steps=2)
    loop.run()
    assert [record.global_step for record in mine.steps] == [1, 2, 3, 4]  # log_every=1
    assert [record.loss_point() for record in mine.steps] == loop.step_log
    assert [record.row for record in mine.epochs] == loop.history and mine.epochs[-1].history == loop.history
    assert all(record.evaluation is None for record in mine.epochs)  # SetMetric is not an evaluation
    assert mine.runs == [RunRecord(loop.history, loop.metrics, loop.step_log)]
    row = loop.history[-1]
    assert lines[-1] == (
        f"epoch 2/2: loss {row['loss']:.4f} (softmax {row['softmax_loss']:.4f}, triplet {row['triplet_loss']:.4f}), "
        f"{row['images_per_s']:.0f} img/s, lr {row['lr']:.2e}"
    )
    first = [line for line in lines if line.startswith("epoch 1/2:")]
    assert len(first) == 1 and re.search(r", about (\d+ s|\d+ min \d\d s) left$", first[0]), first


def test_durations_read_as_a_person_waits() -> None:
    assert [format_duration(s) for s in (0, 44.6, 61, 750, 3600, 3930.2)] == [
        "0 s", "45 s", "1 min 01 s", "12 min 30 s", "1 h 00 min", "1 h 05 min"]


def test_a_trainer_subclass_replaces_one_build_step(cuhk03_dataset: ReidDataset, tmp_path: Path) -> None:
    """fast-reid style: override ``build_optimizer`` and ``build_writers``, keep every other step."""

    class PlainSGDTrainer(Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.optimizers: list[torch.optim.Optimizer] = []
            self.writer = RecordingWriter()

        def build_optimizer(self, model):
            optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0123)
            self.optimizers.append(optimizer)
            return optimizer

        def build_writers(self):
            return [*super().build_writers(), self.writer]

    class SeeOptimizer(Hook):
        def before_train(self, loop: TrainLoop) -> None:
            self.optimizer = loop.step.optimizer

    config = apply_overrides(
        ExperimentConfig(),
        ["data.height=64", "data.width=32", "data.workers=0", "data.ids_per_batch=4", "data.images_per_id=2",
         "model.backbone=mobilenetv2", "model.pretrained=null", "model.kwargs.part_stride=2", "train.epochs=1",
         "optim.milestones=[]", f"train.output_dir={tmp_path}", "train.progress=false", "train.tensorboard=false"],
    )
    see, lines = SeeOptimizer(), []
    trainer = PlainSGDTrainer(config, dataset=subset_identities(cuhk03_dataset, 4, 2), echo=lines.append,
                              hooks=[see])
    result = trainer.fit()
    assert len(trainer.optimizers) == 1 and see.optimizer is trainer.optimizers[0]
    assert result.history[0]["lr"] == 0.0123  # config's optim.lr is 0.01: the run stepped with the override's
    saved = load_checkpoint(result.last_checkpoint)["training_state"]["optimizer"]
    assert saved["param_groups"][0]["lr"] == 0.0123 and saved["param_groups"][0]["momentum"] == 0  # not 0.9
    # The added writer got the records the built-in ones wrote: the same row as metrics.csv, the evaluation printed.
    (epoch,) = trainer.writer.epochs
    assert epoch.row == result.history[0] and epoch.evaluation == result.metrics
    assert any(line.startswith("epoch 1: rank1 ") for line in lines) and (tmp_path / "metrics.csv").is_file()
    assert trainer.writer.runs == [RunRecord(result.history, result.metrics, trainer.writer.runs[0].step_log)]
