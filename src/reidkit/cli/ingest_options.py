"""The options ``reidkit ingest`` and ``reidkit ingest-many`` share, declared once.

``@shared_ingest_options`` adds them to a command's signature (typer reads the signature), and hands them to the
command as one ``IngestFlags``; ``IngestFlags.options`` turns them, with a camera and a start time, into checked
``IngestOptions``. So the two commands cannot drift apart in names, defaults, help or checks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reidkit.cli.options import EmbedBackendOption
from reidkit.errors import ConfigError

if TYPE_CHECKING:
    from reidkit.search.ingest import IngestOptions

DetectorOption = Annotated[
    str | None,
    typer.Option("--detector", help="openvino, openvino-hires (more people, ~2x slower), hog or torchvision "
                 "(default: openvino if its model is found, else hog)"),
]
CheckpointOption = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        help="ReID model: a .pt, a shipped model's name (`reidkit list models`), an .onnx / OpenVINO .xml with "
        "its preprocessing in <file>.yaml, or 'imagenet' for untrained MGN-MobileNetV2 (default: the store's "
        "model, else the shipped market1501_mgn_mobilenetv2)",
    ),
]
DeviceOption = Annotated[str, typer.Option("--device", help="torch device for the ReID model, e.g. cpu or cuda")]
MilvusUriOption = Annotated[
    str | None,
    typer.Option("--milvus-uri", help="Milvus server for a Milvus store, e.g. http://HOST:19530 (default: an "
                 "embedded milvus-lite database inside the store folder)"),
]

EveryOption = Annotated[int, typer.Option("--every", help="process every n-th frame")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", help="crops per ReID forward pass")]


@dataclass(frozen=True)
class IngestFlags:
    """The shared options as typed; the field annotations below are what typer shows (names, help, defaults)."""

    detector: DetectorOption = None
    every: EveryOption = 1
    start_frame: Annotated[int, typer.Option("--start-frame", help="first frame to process")] = 0
    end_frame: Annotated[int | None, typer.Option("--end-frame", help="stop before this frame")] = None
    checkpoint: CheckpointOption = None
    force: Annotated[bool, typer.Option("--force", help="replace an earlier ingest of the same frames")] = False
    device: DeviceOption = "cpu"
    batch_size: BatchSizeOption = 64
    embed_backend: EmbedBackendOption = "auto"
    chunk_frames: Annotated[
        int, typer.Option("--chunk-frames", help="processed frames per commit (the most a crash can lose)")
    ] = 20
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False
    index: Annotated[
        str | None,
        typer.Option("--index", help="vector index of a NEW store: faiss (default) or milvus; a store keeps its own"),
    ] = None
    milvus_uri: MilvusUriOption = None

    def options(self, camera: str, start_time: str | None) -> IngestOptions:
        """The ingest options for one video, checked (``ConfigError`` naming the option) before anything opens."""
        from reidkit.search.ingest import IngestOptions, check_options
        from reidkit.store.rows import parse_time

        if self.batch_size < 1:
            raise ConfigError("--batch-size must be a positive integer")
        options = IngestOptions(
            camera=camera.strip(),
            start_time=parse_time(start_time, "--start-time") if start_time else None,
            every_n=self.every,
            start_frame=self.start_frame,
            end_frame=self.end_frame,
            force=self.force,
            chunk_frames=self.chunk_frames,
            progress=not self.quiet,
        )
        check_options(options)
        self.vector_index()
        return options

    def vector_index(self) -> tuple[str | None, dict[str, str]]:
        """The vector index backend and options a new store records, as ``--index`` / ``--milvus-uri`` ask."""
        return index_choice(self.index, self.milvus_uri)


def index_choice(index: str | None, milvus_uri: str | None) -> tuple[str | None, dict[str, str]]:
    """The backend and options ``--index`` and ``--milvus-uri`` ask for, checked (``ConfigError`` naming the option).

    ``--milvus-uri`` is the Milvus backend's ``uri`` option (a backend's option ``X`` is spelled ``--<backend>-X``)
    and implies ``--index milvus``."""
    from reidkit.store.backend_choice import check_choice

    if milvus_uri is None:
        check_choice(index, {})
        return index, {}
    if index not in (None, "milvus"):
        check_choice(index, {})  # an unknown name lists the choices first
        raise ConfigError(f"--milvus-uri is for --index milvus, not --index {index}")
    options = {"uri": milvus_uri}
    check_choice("milvus", options)
    return "milvus", options


def _shared_parameters() -> list[inspect.Parameter]:
    hints = inspect.get_annotations(IngestFlags, eval_str=True)
    return [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
        for f in fields(IngestFlags)
    ]


def shared_ingest_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command(..., flags: IngestFlags)`` as a typer command taking every ``IngestFlags`` field as an option."""
    own = inspect.signature(command, eval_str=True)
    names = [f.name for f in fields(IngestFlags)]

    @functools.wraps(command)
    def run(**given: Any) -> Any:
        flags = IngestFlags(**{name: given.pop(name) for name in names})
        return command(**given, flags=flags)

    parameters = [p for p in own.parameters.values() if p.name != "flags"] + _shared_parameters()
    run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run
