"""Two processes (torchrun, gloo, CPU) train what one process trains, on a small real subset of the shared CUHK03.

Each epoch here is one optimisation step on a global batch of 4 identities x 8 crops (16 per process). Through
``reidkit train --nproc 2``: a 2-epoch run, and a 1-epoch run that is then resumed to 2 epochs. The first epoch of
the latter is compared with one process's first step on the same batch (every weight and BatchNorm statistic),
the resumed run with the uninterrupted one (bit for bit), and the checkpoint is scored again in one process.

Whole runs are compared only step by step: on batches this small, training is chaotic (a 1e-6 relative change of
the weights already moves one SGD step's result by 1e-2), so float rounding between two equal computations grows
into visible differences after a few steps, whatever the number of processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from reidkit.config import ExperimentConfig, apply_overrides, save_config
from reidkit.data import load_dataset
from reidkit.inference import FeatureExtractor, evaluate_on_dataset
from reidkit.models.model_file import load_checkpoint
from reidkit.training.gpu_batches import BatchAugment
from reidkit.data.subset import subset_identities
from reidkit.training.trainer import Trainer

EPOCHS = 2
# Parameters and BatchNorm statistics after one step: equal up to float rounding (sums taken in another order:
# statistics pooled from two halves, gradients summed over ranks), measured ~1.5e-6 here.
TOLERANCE = 1e-5


def experiment(root: Path, output_dir: Path, *overrides: str) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(), [
        f"data.root={root}", "data.height=64", "data.width=32", "data.ids_per_batch=4", "data.images_per_id=8",
        "data.workers=0", "data.cache_in_memory=true", "data.max_train_ids=4", "data.max_test_ids=2",
        "data.test_batch_size=64", "model.backbone=mobilenetv2", "model.pretrained=imagenet", "model.freeze_layers=7",
        "model.kwargs.part_stride=2", "optim.name=sgd", "optim.lr=0.01", "optim.milestones=[]",
        "loss.label_smoothing=0.1", f"train.epochs={EPOCHS}", "train.eval_every=1", "train.seed=5",
        "train.sync_bn=true", "train.progress=false", "train.tensorboard=false", f"train.output_dir={output_dir}",
        *overrides,
    ])


def reidkit_train(config: ExperimentConfig, path: Path, *args: str) -> str:
    """``reidkit train --nproc 2``; its stdout."""
    save_config(config, path)
    result = subprocess.run(
        [sys.executable, "-m", "reidkit", "train", "--config", str(path), "--nproc", "2", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def runs(cuhk03_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("ddp")
    straight = reidkit_train(experiment(cuhk03_root, base / "two"), base / "two.yaml")
    # Stopped after its first epoch exactly as a killed run leaves it (last.pt of epoch 1), then resumed.
    reidkit_train(experiment(cuhk03_root, base / "cut", "train.epochs=1"), base / "cut.yaml")
    shutil.copy(base / "cut" / "last.pt", base / "cut_epoch1.pt")
    resumed = reidkit_train(experiment(cuhk03_root, base / "cut"), base / "cut.yaml", "--resume")
    Trainer(experiment(cuhk03_root, base / "one", "train.epochs=1"), echo=lambda _: None).fit()
    return {
        "two": base / "two", "cut": base / "cut", "two_epoch1": base / "cut_epoch1.pt", "one": base / "one",
        "straight_stdout": straight, "resumed_stdout": resumed,
    }


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    assert a.keys() == b.keys()
    return max(((a[k].double() - b[k].double()).abs().max().item(), k) for k in a)


@pytest.mark.slow
def test_one_step_of_two_processes_is_one_step_of_one(runs: dict[str, Any]) -> None:
    one = load_checkpoint(runs["one"] / "last.pt")
    two = load_checkpoint(runs["two_epoch1"])
    assert one["history"][0]["steps"] == two["history"][0]["steps"] == 1
    difference, key = max_difference(one["model"]["state_dict"], two["model"]["state_dict"])
    assert difference < TOLERANCE, (difference, key)
    # what one more step changes is orders of magnitude more: the comparison could fail
    second = load_checkpoint(runs["two"] / "last.pt")["model"]["state_dict"]
    assert max_difference(second, two["model"]["state_dict"])[0] > 1000 * TOLERANCE
    # the global loss every rank computed is the one process's loss
    assert two["history"][0]["loss"] == pytest.approx(one["history"][0]["loss"], rel=1e-5)
    assert two["history"][0]["train_accuracy"] == one["history"][0]["train_accuracy"]


@pytest.mark.slow
def test_rank_zero_alone_writes_and_its_checkpoint_scores_the_same_in_one_process(
    runs: dict[str, Any], cuhk03_root: Path
) -> None:
    out = runs["two"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["best.pt", "config.yaml", "curves.png", "last.pt", "metrics.csv", "summary.json"]
    )
    assert (out / "metrics.csv").read_text().count("\n") == 1 + EPOCHS  # one header, one row per epoch: once
    stdout = runs["straight_stdout"]
    assert stdout.count("checkpoints: ") == 1 and stdout.count(f"epoch 1/{EPOCHS}:") == 1
    assert "2 processes" in stdout
    reported = json.loads((out / "summary.json").read_text())["metrics"]
    dataset = subset_identities(load_dataset("market1501", cuhk03_root), 4, 2)
    again = evaluate_on_dataset(FeatureExtractor(out / "last.pt", batch_size=64), dataset).summary
    assert again["num_query"] == reported["num_query"] and again["num_gallery"] == reported["num_gallery"]
    for key in ("rank1", "rank5", "mAP", "mINP"):
        assert again[key] == pytest.approx(reported[key], abs=1e-9), key
    assert again["model_id"] == reported["model_id"]


@pytest.mark.slow
def test_two_process_resume_is_bit_exact(runs: dict[str, Any]) -> None:
    assert f"resuming {runs['cut'] / 'last.pt'} after epoch 1" in runs["resumed_stdout"]
    a, b = load_checkpoint(runs["two"] / "last.pt"), load_checkpoint(runs["cut"] / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    for key, value in a["model"]["state_dict"].items():
        assert torch.equal(value, b["model"]["state_dict"][key]), key
    opt_a, opt_b = a["training_state"]["optimizer"]["state"], b["training_state"]["optimizer"]["state"]
    for index in opt_a:
        for name, value in opt_a[index].items():
            assert torch.equal(value, opt_b[index][name]), (index, name)
    assert [row["loss"] for row in a["history"]] == [row["loss"] for row in b["history"]]
    assert len(b["training_state"]["rng_per_rank"]) == 2


def test_a_rank_augments_its_slice_as_one_process_augments_the_global_batch() -> None:
    images = torch.randint(0, 256, (8, 3, 32, 16), dtype=torch.uint8)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def augment(share: tuple[int, int], batch: torch.Tensor) -> torch.Tensor:
        return BatchAugment(mean, std, pad=4, erasing=0.5, share=share)(batch, torch.Generator().manual_seed(3))

    whole = augment((0, 1), images)
    halves = torch.cat([augment((0, 2), images[:4]), augment((1, 2), images[4:])])
    assert torch.equal(whole, halves)
    # the two halves are not augmented alike (each rank uses its own part of the draws)
    assert not torch.equal(augment((0, 2), images[:4]), augment((1, 2), images[:4]))


def test_nproc_refuses_a_batch_that_does_not_split(tmp_path: Path) -> None:
    config = tmp_path / "odd.yaml"
    save_config(experiment(tmp_path, tmp_path / "out", "data.ids_per_batch=3", "data.images_per_id=3"), config)
    result = subprocess.run(
        [sys.executable, "-m", "reidkit", "train", "--config", str(config), "--nproc", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "--nproc 2" in result.stderr
