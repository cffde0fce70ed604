"""The training demo: train MGN on Market-1501 for a few minutes on a CPU and show what ReID training buys.

It unpacks Market-1501 from the project's shared folder, fine-tunes MGN on an ImageNet MobileNetV2 (the recipe is
the packaged ``demo_cpu.yaml``: small input, cached batches, a fixed number of epochs, so that every machine trains
the same model, only sooner or later), then tests it and the same network with ImageNet weights only on the full
3,368-query / 15,913-gallery protocol, and draws the MGN paper's two pictures on Market queries drawn at random
with a fixed seed: the ranked lists (Fig. 4) and each branch's activation map (Fig. 5). ``run_training_demo``
returns ``{"trained": {...}, "imagenet_only": {...}}`` (each the ``reidkit test --json`` object of that model) with
the figures' paths; ``reidkit demo`` prints it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reidkit.config import ExperimentConfig, apply_overrides, load_config
from reidkit.data import ReidDataset, load_dataset, prepare_shared_market1501
from reidkit.errors import ConfigError, DatasetError
from reidkit.inference import EvalRun, evaluate_on_dataset, untrained_model
from reidkit.inference.activation_maps import activation_maps
from reidkit.models.backbones.mobilenetv2 import SHARED_WEIGHTS, WEIGHTS_ENV
from reidkit.models.model_file import save_weights_only
from reidkit.training.runtime import evaluation_extractor, resolve_device
from reidkit.training.trainer import Trainer
from reidkit.viz.attention import plot_activation_maps
from reidkit.viz.ranked_list import plot_ranked_lists, random_queries

FIGURE_QUERIES = 6
FIGURE_SEED = 0


@dataclass(frozen=True)
class TrainingDemoResult:
    trained: dict[str, Any]
    imagenet_only: dict[str, Any]
    figures: dict[str, Path]
    seconds: float


def run_training_demo(
    shared: Path,
    data_dir: Path,
    out: Path,
    recipe_path: Path,
    root: Path | None = None,
    subset: int | None = None,
    overrides: list[str] | None = None,
    echo: Callable[[str], Any] = print,
) -> TrainingDemoResult:
    """Train, test beside the ImageNet-only network, draw figures; everything lands under ``out``."""
    started = time.monotonic()
    if not recipe_path.is_file():
        raise ConfigError(f"{recipe_path}: demo recipe not found; pass --config PATH or leave it out for demo_cpu")
    if root is None and not (shared / "datasets").is_dir():
        raise DatasetError(
            f"{shared}: shared folder not found. The demo trains on its datasets/market1501.tar: pass --shared DIR, "
            "or unpack Market-1501-v15.09.15.zip yourself and pass --root data/Market-1501-v15.09.15"
        )
    if root is None:
        root = prepare_shared_market1501(shared, data_dir)
    weights = shared / SHARED_WEIGHTS
    if weights.is_file() and WEIGHTS_ENV not in os.environ:
        # build_model finds ImageNet MobileNetV2 weights through this variable when shared/ is not beside the code.
        os.environ[WEIGHTS_ENV] = str(weights.resolve())

    extra = list(overrides or [])
    if subset is not None:
        extra += [f"data.max_train_ids={subset}", f"data.max_test_ids={subset}"]
    recipe = load_config(recipe_path, [])
    recipe = apply_overrides(recipe, [f"data.root={root}", f"train.output_dir={out / 'train'}", *extra])
    train_dir = Path(recipe.train.output_dir)
    if (train_dir / "last.pt").exists() or (train_dir / "config.yaml").exists():
        shutil.rmtree(train_dir)  # the demo's own previous run: start fresh so results are this run's
    dataset = load_dataset(recipe.data.dataset, root, **recipe.data.dataset_options)
    echo(dataset.summary())
    recipe_line = describe_recipe(recipe, recipe_path)
    echo(recipe_line)

    result = Trainer(recipe, dataset=dataset, echo=echo).fit()
    if result.final_eval is None:
        raise ConfigError(f"{recipe_path}: the recipe ran no epoch (train.epochs={recipe.train.epochs})")
    # The shareable model: weights, spec and preprocessing, without optimiser state (a third of the size).
    demo_checkpoint = save_weights_only(result.last_checkpoint, out / "mgn_demo.pt")
    trained = {**result.final_eval.summary, "checkpoint": str(demo_checkpoint)}

    echo("testing the same network with ImageNet weights only (no ReID training)")
    net, card = untrained_model(recipe.model.name, recipe.model.backbone, recipe.data.height, recipe.data.width)
    baseline_extractor = evaluation_extractor(net, card, recipe, resolve_device(recipe.train.device))
    baseline_run = evaluate_on_dataset(
        baseline_extractor, _same_split(dataset, result.final_eval), metric=recipe.train.eval_metric
    )
    baseline = {**baseline_run.summary, "checkpoint": None}
    steps = sum(row["steps"] for row in result.history)
    figures = _draw_figures(result.final_eval, baseline_run, demo_checkpoint, recipe, steps, out)
    figures["training_curves"] = Path(shutil.copyfile(result.output_dir / "curves.png", out / "training_curves.png"))
    figure_paths = {name: str(path) for name, path in figures.items()}
    results = {"trained": trained, "imagenet_only": baseline}
    (out / "results.json").write_text(
        json.dumps({**results, "figures": figure_paths, "recipe": recipe_line, "steps": steps}, indent=2)
    )
    return TrainingDemoResult(trained, baseline, figures, time.monotonic() - started)


def _draw_figures(
    trained: EvalRun, baseline: EvalRun, checkpoint: Path, recipe: ExperimentConfig, steps: int, out: Path
) -> dict[str, Path]:
    """The MGN paper's Fig. 4 for both models and Fig. 5 for the trained one, on the same randomly drawn queries."""
    rows = random_queries(len(trained.query), FIGURE_QUERIES, FIGURE_SEED)
    figures = {
        "ranked_lists": plot_ranked_lists(
            trained.distmat, trained.query, trained.gallery, rows, out / "ranked_lists_trained.png",
            title=f"{recipe.model.name}/{recipe.model.backbone} after {steps} steps of ReID training: top-10 "
            f"(green = same person, red = another; queries drawn with seed {FIGURE_SEED})",
        ).path,
        "ranked_lists_imagenet_only": plot_ranked_lists(
            baseline.distmat, baseline.query, baseline.gallery, rows, out / "ranked_lists_imagenet_only.png",
            title="the same network with ImageNet weights only: top-10",
        ).path,
    }
    queries = [trained.query[row].path for row in rows]
    figures["activation_maps"] = plot_activation_maps(
        activation_maps(checkpoint, queries), out / "activation_maps_trained.png",
        labels=[path.name for path in queries],
        title=f"{recipe.model.name}/{recipe.model.backbone}: each branch's feature-map energy on the same queries",
    )
    return figures


def describe_recipe(recipe: ExperimentConfig, path: Path) -> str:
    """One line saying how the demo trains (printed, and kept in results.json), so that a reader of its numbers
    sees every choice that differs from a plain fine-tuning; the full resolved config is in train/config.yaml."""
    d, m, o, t = recipe.data, recipe.model, recipe.optim, recipe.train
    schedule = (
        f"cosine to 0 over {o.cosine_epochs} epochs" if o.cosine_epochs
        else f"x{o.gamma:g} at epochs {', '.join(map(str, o.milestones))}" if o.milestones else "constant"
    )
    if o.warmup_epochs:
        schedule = f"{o.warmup_epochs}-epoch warm-up, then {schedule}"
    augmentations = [
        name for name, used in (("flip", d.flip), (f"pad {d.pad}", d.pad > 0),
                                (f"random erasing {d.random_erasing:g}", d.random_erasing > 0)) if used
    ]
    parts = [
        f"recipe {path.stem}: {m.name}/{m.backbone} ({m.pretrained or 'scratch'}), {d.height}x{d.width}",
        f"{d.ids_per_batch} ids x {d.images_per_id}",
        f"{o.name} lr {o.lr:.2g}" + (f" (backbone x{o.backbone_lr_mult:g})" if o.backbone_lr_mult != 1 else ""),
        schedule,
        f"augmentation {' + '.join(augmentations) or 'none'}",
        f"first {m.freeze_layers} trunk layers frozen" if m.freeze_layers else "nothing frozen",
        f"up to {t.epochs} epochs" + (f" or {t.max_train_seconds:g}s" if t.max_train_seconds else ""),
        f"evaluation with {t.eval_backend}",
    ]
    return ", ".join(parts)


def _same_split(dataset: ReidDataset, run: EvalRun) -> ReidDataset:
    """The dataset restricted to the query/gallery crops the trained model was tested on (``--subset`` aware)."""
    return replace(dataset, query=list(run.query), gallery=list(run.gallery))
