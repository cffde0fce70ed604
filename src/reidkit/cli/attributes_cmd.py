"""``reidkit attributes IMAGE...``: what a model with an attribute head sees in each crop, with its confidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reidkit.cli.options import CHECKPOINT_HELP, EmbedBackendOption


def register(app: typer.Typer) -> None:
    app.command("attributes", no_args_is_help=True)(attributes)


def attributes(
    images: Annotated[list[Path], typer.Argument(help="person crops and/or folders of crops")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help=CHECKPOINT_HELP)] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="one JSON object: every image's most probable values and all probabilities")
    ] = False,
    flip: Annotated[bool, typer.Option("--flip", help="average with the mirrored crop's prediction")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")] = "auto",
    embed_backend: EmbedBackendOption = None,
) -> None:
    """Each crop's pedestrian attributes (gender, age, clothing, colours, bags) with their probabilities."""
    from reidkit.attribute_schema import group_slices, most_probable
    from reidkit.cli.train_cmd import expand_images
    from reidkit.inference import FeatureExtractor
    from reidkit.inference.device import resolve_device
    from reidkit.models.zoo import DEFAULT_ATTRIBUTE_MODEL
    from reidkit.inference.model_choice import resolve_backend

    paths = expand_images(images)
    torch_device = resolve_device(device, "--device")
    extractor = FeatureExtractor(
        checkpoint or DEFAULT_ATTRIBUTE_MODEL, device=torch_device, flip=flip, attributes=True,
        backend=resolve_backend(embed_backend, str(torch_device)),
    )
    _, probabilities = extractor.extract(paths, desc="attributes")
    schema = extractor.schema
    assert probabilities is not None and schema is not None  # an extractor made with attributes=True gives both
    if as_json:
        rows = []
        for path, row in zip(paths, probabilities, strict=True):
            best = most_probable(schema, row.tolist())
            every = {g.name: dict(zip(g.values, (round(float(p), 4) for p in row[block]), strict=True))
                     for g, block in zip(schema.groups, group_slices(schema.sizes), strict=True)}
            rows.append({"image": str(path), "attributes": {k: {"value": v, "confidence": round(c, 4)}
                                                            for k, (v, c) in best.items()}, "probabilities": every})
        typer.echo(json.dumps({"schema": schema.name, "model_id": extractor.model_id, "images": rows}))
        return
    for path, row in zip(paths, probabilities, strict=True):
        best = most_probable(schema, row.tolist())
        typer.echo(f"{path}: " + ", ".join(f"{name} {value} {confidence:.2f}" for name, (value, confidence) in best.items()))
