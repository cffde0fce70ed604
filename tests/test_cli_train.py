"""``reidkit train / test / extract`` through the installed command, on a tiny Market-layout copy of real crops.

The run is killed with SIGKILL part-way and resumed; its final weights must equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.evaluation import load_features
from reidkit.inference import FeatureExtractor
from reidkit.models.model_file import load_checkpoint

REIDKIT = str(Path(sys.executable).parent / "reidkit")
EPOCHS = 4


@pytest.fixture(scope="module")
def tiny_root(cuhk03_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 train identities and 4 test identities of the shared benchmark, in Market-1501 layout.

    ``gt_bbox/`` (Market-1501's multi-query crops) gets every other gallery crop of the test identities.
    """
    root = tmp_path_factory.mktemp("tiny") / "market"
    for folder, count in (("bounding_box_train", 8), ("query", 4), ("bounding_box_test", 4)):
        files = sorted((cuhk03_root / folder).glob("*.jpg"))
        keep = sorted({f.name[:4] for f in files})[:count]
        (root / folder).mkdir(parents=True)
        for f in files:
            if f.name[:4] in keep:
                shutil.copy(f, root / folder / f.name)
    (root / "gt_bbox").mkdir()
    for f in sorted((root / "bounding_box_test").iterdir())[::2]:
        shutil.copy(f, root / "gt_bbox" / f.name)
    return root


def write_config(path: Path, root: Path, output_dir: Path) -> Path:
    path.write_text(
        f"data:\n  root: {root}\n  height: 64\n  width: 32\n  ids_per_batch: 4\n  images_per_id: 2\n  workers: 0\n"
        "  cache_in_memory: true\n"
        "model:\n  name: mgn\n  backbone: mobilenetv2\n  pretrained: null\n  kwargs: {part_stride: 2}\n"
        "optim:\n  name: adam\n  lr: 3.5e-4\n  milestones: [2]\n"
        f"train:\n  epochs: {EPOCHS}\n  eval_every: 1\n  seed: 3\n  output_dir: {output_dir}\n  progress: false\n"
    )
    return path


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([REIDKIT, *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"reidkit {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted run and a run killed after its first checkpoint, then resumed."""
    base = tmp_path_factory.mktemp("runs")
    straight = write_config(base / "straight.yaml", tiny_root, base / "straight")
    train_output = run("train", "--config", str(straight))
    resumed_config = write_config(base / "resumed.yaml", tiny_root, base / "resumed")
    process = subprocess.Popen([REIDKIT, "train", "--config", str(resumed_config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    last = base / "resumed" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = load_checkpoint(last)["epoch"]
    resumed = run("train", "--config", str(resumed_config), "--resume")
    return {
        "straight": base / "straight", "resumed": base / "resumed", "killed_at": killed_at,  # type: ignore[dict-item]
        "straight_json": last_json(train_output.stdout), "resumed_stdout": resumed.stdout,  # type: ignore[dict-item]
    }


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(runs: dict) -> None:
    assert runs["killed_at"] < EPOCHS, "the run finished before it could be killed; nothing was resumed"
    assert f"resuming {runs['resumed'] / 'last.pt'} after epoch {runs['killed_at']}" in runs["resumed_stdout"]
    a = load_checkpoint(runs["straight"] / "last.pt")
    b = load_checkpoint(runs["resumed"] / "last.pt")
    assert a["epoch"] == b["epoch"] == EPOCHS
    for key, tensor in a["model"]["state_dict"].items():
        assert torch.equal(tensor, b["model"]["state_dict"][key]), key
    csv_rows = (runs["resumed"] / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + EPOCHS  # header + one row per epoch, none duplicated by the kill


@pytest.mark.slow
def test_test_command_reproduces_training_numbers_with_protocol_fields(runs: dict, tiny_root: Path) -> None:
    checkpoint = runs["straight"] / "last.pt"
    summary = last_json(run("test", "--checkpoint", str(checkpoint), "--root", str(tiny_root), "--json").stdout)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_query", "num_gallery", "num_valid_query",
                "rerank", "metric", "dataset", "split", "query_mode", "flip", "backbone_init", "input_size", "model"):
        assert key in summary, key
    assert summary["rank1"] == runs["straight_json"]["rank1"] and summary["mAP"] == runs["straight_json"]["mAP"]
    assert (summary["split"], summary["query_mode"], summary["flip"]) == ("test", "single", False)
    assert summary["rerank"] is False
    assert (summary["backbone_init"], summary["input_size"], summary["model"]) == ("scratch", [64, 32], "mgn")
    assert summary["num_query"] == len(list((tiny_root / "query").iterdir()))
    table = run(
        "test", "--checkpoint", str(checkpoint), "--root", str(tiny_root), "--flip", "--metric", "cosine"
    ).stdout
    assert "rank1" in table and "flip True" in table and "cosine" in table
    multi = last_json(run(
        "test", "--checkpoint", str(checkpoint), "--root", str(tiny_root), "--multi-query", "--rerank", "--json"
    ).stdout)
    pairs = {(p.name[:4], p.name[6]) for p in (tiny_root / "query").iterdir()}
    assert (multi["query_mode"], multi["num_query"], multi["rerank"]) == ("multi-mean", len(pairs), True)


@pytest.mark.slow
def test_test_command_scores_an_imagenet_only_model(tiny_root: Path) -> None:
    summary = last_json(run(
        "test", "--imagenet-only", "--model", "mgn", "--backbone", "mobilenetv2", "--height", "64", "--width", "32",
        "--root", str(tiny_root), "--json",
    ).stdout)
    assert summary["backbone_init"] == "imagenet" and summary["checkpoint"] is None
    assert 0.0 <= summary["rank1"] <= 1.0 and summary["input_size"] == [64, 32]


@pytest.mark.slow
def test_extract_writes_features_with_labels_from_names(runs: dict, tiny_root: Path, tmp_path: Path) -> None:
    checkpoint = runs["straight"] / "last.pt"
    loose = tmp_path / "camera_dump.png"
    shutil.copy(next((tiny_root / "query").iterdir()), loose)
    out = tmp_path / "feats.npz"
    run("extract", "--checkpoint", str(checkpoint), str(tiny_root / "query"), str(loose), "--out", str(out))
    saved = load_features(out)
    queries = sorted((tiny_root / "query").iterdir())
    assert saved.paths == [str(p) for p in queries] + [str(loose)]
    assert saved.pids.tolist() == [int(p.name[:4]) for p in queries] + [-1]
    assert saved.camids.tolist() == [int(p.name[6]) - 1 for p in queries] + [-1]
    expected = FeatureExtractor(checkpoint, batch_size=128)([*queries, loose])
    np.testing.assert_allclose(saved.features, expected, rtol=1e-5, atol=1e-6)


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    missing = run("train", "--config", str(tmp_path / "missing.yaml"), check=False)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "missing.yaml" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 1\n")
    override = run("train", "--config", str(bad), "train.epochz=3", check=False)
    assert override.returncode == 2 and "train.epochz" in override.stderr
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"nope")
    for args in (("test", "--checkpoint", str(garbage), "--root", str(tmp_path)),
                 ("extract", "--checkpoint", str(garbage), str(garbage), "--out", str(tmp_path / "f.npz"))):
        result = run(*args, check=False)
        assert result.returncode == 2 and "garbage.pt" in result.stderr, result.stderr
    # --device is named as the option the user typed (not as the recipe key train.device)
    image = tmp_path / "person.png"
    Image.fromarray(np.zeros((128, 64, 3), np.uint8)).save(image)
    devices = [("banana", "is not a torch device")] + ([] if torch.cuda.is_available() else [("cuda", "no CUDA GPU")])
    for device, reason in devices:
        for args in (("test", "--checkpoint", str(garbage), "--root", str(tmp_path)),
                     ("extract", "--checkpoint", str(garbage), str(image), "--out", str(tmp_path / "f.npz"))):
            result = run(*args, "--device", device, check=False)
            assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
            assert f"--device={device!r}" in result.stderr and reason in result.stderr
            assert "train.device" not in result.stderr


def test_a_recipe_with_a_bad_base_is_one_line_naming_it(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("base: no_such_recipe\ntrain:\n  epochs: 1\n")
    result = run("train", "--config", str(child), check=False)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert f"{child}: base 'no_such_recipe'" in result.stderr
