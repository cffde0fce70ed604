"""``reidkit demo`` end to end, shrunk: a few Market-1501 identities, a 64x32 input and one epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reidkit.config import load_config
from reidkit.demos.training_demo import describe_recipe
from reidkit.inference import FeatureExtractor
from reidkit.recipes import resolve_recipe

REIDKIT = str(Path(sys.executable).parent / "reidkit")
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reduced_demo_reports_both_models_and_draws_its_figures(
    shared_dir: Path, market_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [REIDKIT, "demo", "--shared", str(shared_dir), "--data-dir", str(market_root.parent), "--out", str(out),
         "--subset", "12", "train.epochs=1", "optim.cosine_epochs=1", "data.height=64", "data.width=32",
         "train.progress=false"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"trained", "imagenet_only"}
    for name, summary in last.items():
        for key in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_query", "num_gallery", "num_valid_query",
                    "rerank", "metric", "dataset", "split", "query_mode", "flip", "backbone_init", "input_size",
                    "model"):
            assert key in summary, (name, key)
        assert 0.0 <= summary["rank1"] <= summary["rank5"] <= summary["rank10"] <= 1.0
        assert summary["backbone_init"] == "imagenet" and summary["input_size"] == [64, 32]
    trained, baseline = last["trained"], last["imagenet_only"]
    assert (trained["num_query"], trained["num_gallery"]) == (baseline["num_query"], baseline["num_gallery"])
    assert trained["model_id"] != baseline["model_id"]
    assert trained["dataset"] == "market1501" and trained["num_query"] > 0
    for figure in ("ranked_lists_trained.png", "ranked_lists_imagenet_only.png", "activation_maps_trained.png",
                   "training_curves.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    checkpoint = out / "mgn_demo.pt"
    assert trained["checkpoint"] == str(checkpoint)
    assert FeatureExtractor(checkpoint).model_id == trained["model_id"]
    recorded = json.loads((out / "results.json").read_text())
    assert recorded["trained"] == trained
    assert recorded["recipe"] in result.stdout and "evaluation with openvino" in recorded["recipe"]
    assert recorded["steps"] >= 1


def test_the_demo_recipe_line_names_every_choice_that_shapes_its_numbers() -> None:
    path = resolve_recipe("demo_cpu")
    recipe = load_config(path)
    line = describe_recipe(recipe, path)
    assert line.startswith("recipe demo_cpu: mgn/mobilenetv2 (imagenet), 128x64, ")
    assert f"first {recipe.model.freeze_layers} trunk layers frozen" in line and recipe.model.freeze_layers > 0
    assert f"cosine to 0 over {recipe.optim.cosine_epochs} epochs" in line
    assert "augmentation flip," in line and "evaluation with openvino" in line
    plain = load_config(path, ["model.freeze_layers=0", "optim.cosine_epochs=0", "optim.milestones=[2]",
                               "data.pad=4", "train.eval_backend=torch"])
    line = describe_recipe(plain, path)
    assert "nothing frozen" in line and "x0.1 at epochs 2" in line and "flip + pad 4" in line
    assert "evaluation with torch" in line


def test_demo_without_shared_data_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [REIDKIT, "demo", "--shared", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert "Market-1501" in result.stderr and "--root" in result.stderr
    assert result.stderr.strip().count("\n") == 0
