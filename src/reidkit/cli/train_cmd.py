"""``reidkit train``, ``reidkit test`` and ``reidkit extract``: from a config to a checkpoint to numbers and features.

Heavy imports (torch, the model zoo) happen inside the commands so that ``reidkit --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from reidkit.cli.options import CHECKPOINT_HELP, EmbedBackendOption
from reidkit.errors import ConfigError, ReidkitError


def register(app: typer.Typer) -> None:
    """Add ``train``, ``test`` and ``extract`` to the ``reidkit`` app."""
    app.command("train", no_args_is_help=True)(train)
    app.command("test", no_args_is_help=True)(test)
    app.command("extract", no_args_is_help=True)(extract)


def train(
    config: Annotated[
        str, typer.Option("--config", "-c", help="experiment YAML, or a shipped recipe by name (reidkit list recipes)")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="section.key=value overrides, e.g. train.epochs=5 model.backbone=mobilenetv2"),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue train.output_dir/last.pt exactly where it stopped")
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc", min=1,
            help="processes on this machine (one per GPU): starts torchrun for you; for several machines run torchrun",
        ),
    ] = 1,
) -> None:
    """Train a ReID model; writes last.pt / best.pt, metrics.csv, TensorBoard logs and curves.png."""
    from reidkit.config import load_config

    experiment = load_config(config, overrides or [])  # before importing torch: config mistakes fail instantly
    if nproc > 1:
        global_batch = experiment.data.ids_per_batch * experiment.data.images_per_id
        if global_batch % nproc:
            raise ConfigError(
                f"--nproc {nproc}: the global batch data.ids_per_batch x data.images_per_id = {global_batch} does "
                "not split evenly over the processes"
            )
        args = ["--config", config, *(overrides or []), *(["--resume"] if resume else [])]
        raise typer.Exit(launch_torchrun(nproc, args))
    from reidkit.training.trainer import Trainer

    result = Trainer(experiment, echo=typer.echo).fit(resume=resume)
    if not result.is_main_process:
        return
    best = f", {result.best_checkpoint}" if result.best_checkpoint else ""
    typer.echo(f"checkpoints: {result.last_checkpoint}{best}")
    typer.echo(json.dumps({"epochs": result.epochs_done, "stopped_early": result.stopped_early, **result.metrics}))


def launch_torchrun(nproc: int, train_args: list[str]) -> int:
    """Run ``reidkit train train_args`` in ``nproc`` processes on this machine through torchrun; its exit status.

    ``--standalone`` lets torchrun pick a free local port, so several runs can share a machine.
    """
    import os
    import subprocess
    import sys

    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc inside a torchrun worker: start either torchrun or reidkit train --nproc, not both")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "reidkit", "train", *train_args,
    ]
    return subprocess.run(command, check=False).returncode


def test(
    root: Annotated[Path, typer.Option("--root", help="dataset folder (e.g. data/market1501)")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help=CHECKPOINT_HELP)] = None,
    dataset: Annotated[
        str, typer.Option("--dataset", help="dataset reader: market1501, dukemtmc, cuhk03, ...")
    ] = "market1501",
    rerank: Annotated[bool, typer.Option("--rerank", help="k-reciprocal re-ranking (Zhong et al. 2017)")] = False,
    flip: Annotated[bool, typer.Option("--flip", help="average each feature with its mirrored crop's")] = False,
    metric: Annotated[str, typer.Option("--metric", help="euclidean (squared) or cosine")] = "euclidean",
    multi_query: Annotated[bool, typer.Option("--multi-query", help="pool each query with its gt_bbox crops")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of a table")] = False,
    imagenet_only: Annotated[
        bool, typer.Option("--imagenet-only", help="test an untrained model: ImageNet backbone, random heads")
    ] = False,
    model: Annotated[str, typer.Option("--model", help="with --imagenet-only: model name")] = "mgn",
    backbone: Annotated[str, typer.Option("--backbone", help="with --imagenet-only: backbone")] = "resnet50",
    height: Annotated[int, typer.Option("--height", help="with --imagenet-only: input height")] = 384,
    width: Annotated[int, typer.Option("--width", help="with --imagenet-only: input width")] = 128,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    workers: Annotated[int, typer.Option("--workers", help="image-decoding worker processes")] = 2,
    embed_backend: EmbedBackendOption = None,
    attributes: Annotated[
        Path | None,
        typer.Option(
            "--attributes",
            help="the test identities' attribute labels (Market-1501's market_attribute.mat) to score a model with "
            "an attribute head; default: market1501-attributes/market_attribute.mat beside --root, if there",
        ),
    ] = None,
) -> None:
    """Rank-1/5/10, mAP and mINP of a checkpoint (or an ImageNet-only model) on a dataset's test split, and the
    attribute accuracy of a model with an attribute head."""
    from reidkit.data import load_dataset
    from reidkit.inference import FeatureExtractor, evaluate_on_dataset, untrained_model
    from reidkit.inference.device import resolve_device
    from reidkit.models.zoo import DEFAULT_MODEL
    from reidkit.inference.model_choice import resolve_backend

    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"--metric {metric!r}: use euclidean or cosine")
    if checkpoint is not None and imagenet_only:
        raise ConfigError("pass --checkpoint CKPT or --imagenet-only, not both")
    if not imagenet_only:
        checkpoint = checkpoint or Path(DEFAULT_MODEL)
    torch_device = resolve_device(device, "--device")
    backend = resolve_backend(embed_backend, str(torch_device))
    labels = None
    if checkpoint is not None:
        extractor = FeatureExtractor(
            checkpoint, device=torch_device, batch_size=batch_size, flip=flip, workers=workers, backend=backend,
            attributes=None,
        )
        labels = test_attribute_labels(checkpoint, extractor.schema is not None, root, attributes)
    else:
        net, card = untrained_model(model, backbone, height, width)
        extractor = FeatureExtractor(
            net, device=torch_device, batch_size=batch_size, flip=flip, card=card, workers=workers, backend=backend,
            frozen=True,
        )
    run = evaluate_on_dataset(
        extractor, load_dataset(dataset, root), metric=metric, rerank=rerank, multi_query=multi_query,
        attribute_labels=labels,
    )
    summary = {**run.summary, "checkpoint": None if checkpoint is None else str(checkpoint)}
    typer.echo(json.dumps(summary) if as_json else format_summary(summary))


def test_attribute_labels(checkpoint: Path, has_head: bool, root: Path, given: Path | None) -> Any:
    """The test split's attribute labels where the model has an attribute head: ``--attributes``, else the copy
    ``prepare_shared_market1501_attributes`` leaves beside the dataset; None otherwise (with a note if the model
    predicts attributes that nothing can score)."""
    from reidkit.data.market_attributes import read_market1501_attributes

    if not has_head:
        if given is not None:
            raise ConfigError(f"--attributes: {checkpoint} has no attribute head, so it predicts no attributes")
        return None
    path = given or Path(root).resolve().parent / "market1501-attributes" / "market_attribute.mat"
    if given is None and not path.is_file():
        typer.echo(f"note: {checkpoint} predicts attributes; pass --attributes market_attribute.mat to score them")
        return None
    return read_market1501_attributes(path, "test")


def extract(
    images: Annotated[list[Path], typer.Argument(help="image files and/or folders of images")],
    out: Annotated[Path, typer.Option("--out", help="output .npz (features, pids, camids, paths)")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help=CHECKPOINT_HELP)] = None,
    flip: Annotated[bool, typer.Option("--flip", help="average each feature with its mirrored crop's")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    workers: Annotated[int, typer.Option("--workers", help="image-decoding worker processes")] = 2,
    embed_backend: EmbedBackendOption = None,
) -> None:
    """Features for images; pids/camids come from Market-style names (0002_c1s1_...) where present, else -1."""
    from reidkit.evaluation import save_features
    from reidkit.inference import FeatureExtractor
    from reidkit.data.image_files import labels_from_name
    from reidkit.inference.device import resolve_device
    from reidkit.models.zoo import DEFAULT_MODEL
    from reidkit.inference.model_choice import resolve_backend

    paths = expand_images(images)
    torch_device = resolve_device(device, "--device")
    extractor = FeatureExtractor(
        checkpoint or DEFAULT_MODEL, device=torch_device, batch_size=batch_size, flip=flip, workers=workers,
        backend=resolve_backend(embed_backend, str(torch_device)),
    )
    features = extractor(paths)
    labels = [labels_from_name(p.name) for p in paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_features(
        out,
        features,
        [pid for pid, _ in labels],
        [camid for _, camid in labels],
        paths=[str(p) for p in paths],
    )
    labelled = sum(1 for pid, _ in labels if pid != -1)
    typer.echo(
        f"wrote {out}: {len(paths)} x {extractor.feature_dim} features ({labelled} with labels from file names), "
        f"model {extractor.model_id}"
    )


def expand_images(inputs: list[Path]) -> list[Path]:
    """Files as given, folders as their image files in name order; a missing path is an error, not a skip."""
    from reidkit.data.image_files import image_files

    paths: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                raise ReidkitError(f"{item}: folder holds no .jpg/.jpeg/.png/.bmp images")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise ReidkitError(f"{item}: no such file or folder")
    return paths


def format_summary(summary: dict[str, Any]) -> str:
    """A two-line human report: the numbers, then the protocol that produced them (and two more lines with the
    attribute scores, for a model with an attribute head)."""
    numbers = "  ".join(f"{key} {100 * summary[key]:.2f}%" for key in ("rank1", "rank5", "rank10", "mAP", "mINP"))
    protocol = (
        f"{summary['model']}/{summary['backbone']} ({summary['backbone_init']} init, "
        f"{'checkpoint ' + summary['checkpoint'] if summary.get('checkpoint') else 'no ReID training'}) on "
        f"{summary['dataset']} {summary['split']}: {summary['num_query']} queries ({summary['query_mode']}-query), "
        f"{summary['num_gallery']} gallery, {summary['metric']} distance, flip {summary['flip']}, "
        f"re-ranking {summary['rerank']}, input {summary['input_size'][0]}x{summary['input_size'][1]}"
    )
    scores = summary.get("attributes")
    if not scores:
        return f"{numbers}\n{protocol}"
    groups = "  ".join(f"{name} {100 * value:.1f}%" for name, value in scores["group_accuracy"].items())
    attributes = (
        f"attributes on {scores['num_images']} gallery images of labelled identities: mean accuracy "
        f"{100 * scores['mean_accuracy']:.2f}%  mA {100 * scores['label_mA']:.2f}%  F1 {100 * scores['instance_f1']:.2f}%"
        f"\n  {groups}"
    )
    return f"{numbers}\n{protocol}\n{attributes}"
