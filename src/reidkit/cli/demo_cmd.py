"""``reidkit demo``: train MGN on real data for a few minutes on a CPU and show what ReID training buys.

It unpacks the project's shared CUHK03 benchmark, fine-tunes MGN on an ImageNet MobileNetV2 (the recipe is
``configs/demo_cpu.yaml``: small input, cached batches, wall-clock budget), then tests it and the same network
with ImageNet weights only on the full 1,400-query / 5,340-gallery split, under one protocol. The last stdout line
is ``{"trained": {...}, "imagenet_only": {...}}``, each the ``reidkit test --json`` object of that model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from reidkit.errors import ConfigError, DatasetError

# src/reidkit/cli/demo_cmd.py -> the checkout root, which holds configs/.
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo_cpu.yaml"
FIGURE_QUERIES = 6


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``reidkit`` app."""
    app.command("demo")(demo)


def demo(
    shared: Annotated[Path, typer.Option("--shared", help="the project's shared folder (datasets/, models/)")] = Path(
        "../shared"
    ),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="where the benchmark is unpacked")] = Path("data"),
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("runs/demo"),
    root: Annotated[
        Path | None,
        typer.Option("--root", help="use this Market-1501-layout dataset instead of the shared CUHK03 benchmark"),
    ] = None,
    config: Annotated[Path, typer.Option("--config", help="training recipe")] = DEFAULT_CONFIG,
    max_train_seconds: Annotated[
        float | None, typer.Option("--max-train-seconds", help="wall-clock training budget (overrides the recipe)")
    ] = None,
    subset: Annotated[
        int | None, typer.Option("--subset", help="quick check: only the first N train and N test identities")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="extra section.key=value recipe overrides")] = None,
) -> None:
    """Train MGN-MobileNetV2 for a few minutes, test it beside its ImageNet-only self, draw ranked lists."""
    from reidkit.config import apply_overrides, load_config

    started = time.monotonic()
    if not config.is_file():
        raise ConfigError(f"{config}: demo recipe not found; pass --config configs/demo_cpu.yaml from the checkout")
    if root is None and not (shared / "datasets").is_dir():
        raise DatasetError(
            f"{shared}: shared folder not found. The demo trains on its datasets/cuhk03-detected-64x128.tar: "
            "pass --shared DIR. To run it on Market-1501 instead, unpack Market-1501-v15.09.15.zip into "
            "data/market1501 and run `reidkit demo --root data/market1501` (or train fully with "
            "`reidkit train --config configs/mgn_market1501.yaml data.root=data/market1501`)"
        )
    # Heavy imports only once the cheap checks have passed, so a wrong path fails instantly.
    from reidkit.data import load_dataset, prepare_shared_cuhk03
    from reidkit.inference import FeatureExtractor, evaluate_on_dataset, untrained_model
    from reidkit.models.backbones.mobilenetv2 import SHARED_WEIGHTS, WEIGHTS_ENV
    from reidkit.training.checkpoint import load_checkpoint, save_checkpoint
    from reidkit.training.runtime import resolve_device
    from reidkit.training.trainer import Trainer
    from reidkit.viz.ranked_list import plot_ranked_lists

    if root is None:
        root = prepare_shared_cuhk03(shared, data_dir)
    weights = shared / SHARED_WEIGHTS
    if weights.is_file() and WEIGHTS_ENV not in os.environ:
        # build_model finds ImageNet MobileNetV2 weights through this variable when shared/ is not beside the code.
        os.environ[WEIGHTS_ENV] = str(weights.resolve())

    extra = list(overrides or [])
    if max_train_seconds is not None:
        extra.append(f"train.max_train_seconds={max_train_seconds}")
    if subset is not None:
        extra += [f"data.max_train_ids={subset}", f"data.max_test_ids={subset}"]
    recipe = load_config(config, [])
    recipe = apply_overrides(recipe, [f"data.root={root}", f"train.output_dir={out / 'train'}", *extra])
    train_dir = Path(recipe.train.output_dir)
    if (train_dir / "last.pt").exists() or (train_dir / "config.yaml").exists():
        shutil.rmtree(train_dir)  # the demo's own previous run: start fresh so results are this run's
    dataset = load_dataset(recipe.data.dataset, root, **recipe.data.dataset_options)
    typer.echo(dataset.summary())

    result = Trainer(recipe, dataset=dataset, echo=typer.echo).fit()
    if result.final_eval is None:
        raise ConfigError(f"{config}: the recipe ran no epoch (train.epochs={recipe.train.epochs})")
    demo_checkpoint = out / "mgn_demo.pt"
    # The shareable model: weights, spec and preprocessing, without optimiser state (a third of the size).
    payload = load_checkpoint(result.last_checkpoint)
    payload.pop("training_state")
    payload = {k: v for k, v in payload.items() if k not in ("format", "version")}
    save_checkpoint(demo_checkpoint, payload)
    trained = {**result.final_eval.summary, "checkpoint": str(demo_checkpoint)}

    typer.echo("testing the same network with ImageNet weights only (no ReID training)")
    net, card = untrained_model(recipe.model.name, recipe.model.backbone, recipe.data.height, recipe.data.width)
    baseline_extractor = FeatureExtractor(
        net,
        device=resolve_device(recipe.train.device),
        batch_size=recipe.data.test_batch_size,
        flip=recipe.train.eval_flip,
        card=card,
        workers=recipe.data.workers,
        progress=recipe.train.progress,
    )
    trained_run = result.final_eval
    baseline_run = evaluate_on_dataset(
        baseline_extractor, _same_split(dataset, trained_run), metric=recipe.train.eval_metric
    )
    baseline = {**baseline_run.summary, "checkpoint": None}

    rows = _figure_queries(len(trained_run.query))
    steps = sum(row["steps"] for row in result.history)
    figures = {
        "ranked_lists": plot_ranked_lists(
            trained_run.distmat, trained_run.query, trained_run.gallery, rows, out / "ranked_lists_trained.png",
            title=f"{recipe.model.name}/{recipe.model.backbone} after {steps} steps of ReID training: top-10 "
            "(green = same person, red = another)",
        ),
        "ranked_lists_imagenet_only": plot_ranked_lists(
            baseline_run.distmat,
            baseline_run.query,
            baseline_run.gallery,
            rows,
            out / "ranked_lists_imagenet_only.png",
            title="the same network with ImageNet weights only: top-10",
        ),
        "training_curves": Path(shutil.copyfile(result.output_dir / "curves.png", out / "training_curves.png")),
    }
    results = {"trained": trained, "imagenet_only": baseline}
    figure_paths = {name: str(path) for name, path in figures.items()}
    (out / "results.json").write_text(json.dumps({**results, "figures": figure_paths}, indent=2))
    typer.echo(_table(trained, baseline))
    for name, path in figures.items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"trained checkpoint: {demo_checkpoint} (demo took {time.monotonic() - started:.0f}s)")
    typer.echo(json.dumps(results))


def _same_split(dataset: Any, run: Any) -> Any:
    """The dataset restricted to the query/gallery crops the trained model was tested on (``--subset`` aware)."""
    from dataclasses import replace

    return replace(dataset, query=list(run.query), gallery=list(run.gallery))


def _figure_queries(num_query: int) -> list[int]:
    """Query rows spread evenly over the split, so the figure is not just the first few identities."""
    count = min(FIGURE_QUERIES, num_query)
    return [round(i * (num_query - 1) / max(count - 1, 1)) for i in range(count)]


def _table(trained: dict[str, Any], baseline: dict[str, Any]) -> str:
    keys = ("rank1", "rank5", "rank10", "mAP", "mINP")
    name = f"{trained['model']}/{trained['backbone']}"
    lines = [
        f"{trained['dataset']} ({trained['root']}) test split: {trained['num_query']} queries, "
        f"{trained['num_gallery']} gallery, {trained['query_mode']} query, {trained['metric']} distance, "
        f"re-ranking {trained['rerank']}, flip {trained['flip']}, input "
        f"{trained['input_size'][0]}x{trained['input_size'][1]}",
        f"{'model':<36}" + "".join(f"{k:>9}" for k in keys),
    ]
    for label, summary in ((f"{name}, ReID-trained", trained), (f"{name}, ImageNet only", baseline)):
        lines.append(f"{label:<36}" + "".join(f"{100 * summary[k]:>8.2f}%" for k in keys))
    return "\n".join(lines)
