"""The options ``reidkit ingest`` and ``reidkit ingest-many`` share: declared once here (typer option types), turned
into ``IngestOptions`` and checked by one function, so the two commands cannot drift apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from reidkit.errors import ConfigError

if TYPE_CHECKING:
    from reidkit.search.ingest import IngestOptions

DetectorOption = Annotated[
    str | None,
    typer.Option("--detector", help="hog, openvino or torchvision (default: openvino if its model is found, else hog)"),
]
CheckpointOption = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        help="ReID checkpoint, or 'imagenet' for untrained MGN-MobileNetV2 (default: the store's model, else "
        "runs/demo/mgn_demo.pt, else imagenet)",
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", help="torch device for the ReID model, e.g. cpu or cuda")]
EveryOption = Annotated[int, typer.Option("--every", help="process every n-th frame")]
StartFrameOption = Annotated[int, typer.Option("--start-frame", help="first frame to process")]
EndFrameOption = Annotated[int | None, typer.Option("--end-frame", help="stop before this frame")]
ForceOption = Annotated[bool, typer.Option("--force", help="replace an earlier ingest of the same frames")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", help="crops per ReID forward pass")]
EmbedBackendOption = Annotated[
    str, typer.Option("--embed-backend", help="auto (OpenVINO on CPU when installed: fastest), torch or openvino")
]
ChunkFramesOption = Annotated[
    int, typer.Option("--chunk-frames", help="processed frames per commit (the most a crash can lose)")
]
QuietOption = Annotated[bool, typer.Option("--quiet", help="no progress bar")]


def ingest_options(
    camera: str,
    start_time: str | None,
    every: int,
    start_frame: int,
    end_frame: int | None,
    force: bool,
    chunk_frames: int,
    batch_size: int,
    quiet: bool,
) -> IngestOptions:
    """The ingest options the user typed, checked (``ConfigError`` naming the option) before anything is opened."""
    from reidkit.search.ingest import IngestOptions, check_options
    from reidkit.search.rows import parse_time

    if batch_size < 1:
        raise ConfigError("--batch-size must be a positive integer")
    options = IngestOptions(
        camera=camera.strip(),
        start_time=parse_time(start_time, "--start-time") if start_time else None,
        every_n=every,
        start_frame=start_frame,
        end_frame=end_frame,
        force=force,
        chunk_frames=chunk_frames,
        progress=not quiet,
    )
    check_options(options)
    return options
