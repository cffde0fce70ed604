"""``reidkit demo`` and ``reidkit demo-video``: the training demo (``reidkit.demos.training_demo``) and the
person-search demo (``reidkit.demos.video_demo``) from the command line.

The last stdout line of each is one JSON object: ``demo``'s ``{"trained": {...}, "imagenet_only": {...}}`` (each
the ``reidkit test --json`` object of that model), ``demo-video``'s the search's summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from reidkit.cli.ingest_options import CheckpointOption, DetectorOption
from reidkit.errors import ConfigError

DEFAULT_RECIPE = "demo_cpu"


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``demo-video`` to the ``reidkit`` app."""
    app.command("demo")(demo)
    app.command("demo-video")(demo_video)


def demo(
    shared: Annotated[Path, typer.Option("--shared", help="the project's shared folder (datasets/, models/)")] = Path(
        "../shared"
    ),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="where the benchmark is unpacked")] = Path("data"),
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("runs/demo"),
    root: Annotated[
        Path | None,
        typer.Option("--root", help="use this Market-1501-layout dataset instead of the shared Market-1501 tar"),
    ] = None,
    config: Annotated[
        str, typer.Option("--config", help="training recipe: a shipped recipe's name or a YAML file")
    ] = DEFAULT_RECIPE,
    subset: Annotated[
        int | None, typer.Option("--subset", help="quick check: only the first N train and N test identities")
    ] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="extra section.key=value recipe overrides")] = None,
) -> None:
    """Train MGN-MobileNetV2 on Market-1501 for a fixed number of epochs (about 10 minutes on 2 idle cores), test it
    beside its ImageNet-only self, draw ranked lists and activation maps."""
    from reidkit.demos.training_demo import run_training_demo
    from reidkit.recipes import resolve_recipe

    found = run_training_demo(
        shared, data_dir, out, resolve_recipe(config), root=root, subset=subset, overrides=overrides,
        echo=typer.echo,
    )
    typer.echo(_table(found.trained, found.imagenet_only))
    for name, path in found.figures.items():
        typer.echo(f"{name}: {path}")
    typer.echo(f"trained checkpoint: {found.trained['checkpoint']} (demo took {found.seconds:.0f}s)")
    typer.echo(json.dumps({"trained": found.trained, "imagenet_only": found.imagenet_only}))


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


def demo_video(
    shared: Annotated[Path, typer.Option("--shared", help="the project's shared folder (videos/, models/)")] = Path(
        "../shared"
    ),
    data_dir: Annotated[Path, typer.Option("--data-dir", help="where the demo's store is kept")] = Path("data"),
    out: Annotated[Path, typer.Option("--out", help="output folder (HTML page, JSON)")] = Path("runs/demo-video"),
    every: Annotated[int, typer.Option("--every", help="process every n-th frame")] = 2,
    checkpoint: CheckpointOption = None,
    detector: DetectorOption = None,
) -> None:
    """Ingest the shared pedestrian video as two cameras, then find a walker of the first in the second."""
    from reidkit.demos.video_demo import run_demo_video

    if every < 1:
        raise ConfigError("--every must be a positive integer")
    from reidkit.cli.search_report import hits_table, trajectory_heading, trajectory_table

    found = run_demo_video(shared, data_dir, out, every, checkpoint, detector, echo=typer.echo)
    typer.echo(f"\nquery: {found.query_label}")
    typer.echo(hits_table(found.search.hits, found.store_root))
    typer.echo("\n" + trajectory_heading(found.search))
    typer.echo(trajectory_table(found.search.trajectory))
    typer.echo(f"\n{found.verdict}")
    typer.echo(json.dumps(found.summary))
