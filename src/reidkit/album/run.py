"""``cluster_album``: photos (or person crops) in, who is who out: detect -> embed -> cluster -> outputs.

Images are read, detected, embedded and thumbnailed in chunks, so memory holds one chunk of images plus the
features, never the whole album.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.album.outputs import OutputItem, OutputStaging
from reidkit.album.sources import collect_images, sightings
from reidkit.clustering import ClusterOptions, cluster_features
from reidkit.errors import ConfigError

_CHUNK = 64


@dataclass(frozen=True)
class AlbumOptions:
    """``crops``: every image is one person (no detector); ``checkpoint``: a model file or ``imagenet`` (default:
    the demo model when present, as ``reidkit ingest`` chooses); ``detector``: a ``DETECTORS`` name (default: as
    ingest); ``flip``: average each feature with the mirrored crop's; ``cluster``: the clustering options."""

    crops: bool = False
    checkpoint: str | None = None
    detector: str | None = None
    device: str = "cpu"
    batch_size: int = 64
    flip: bool = False
    cluster: ClusterOptions = field(default_factory=ClusterOptions)


@dataclass(frozen=True)
class AlbumReport:
    out: Path
    images: int
    sightings: int
    people: int
    unclustered: int
    model: str
    warning: str | None
    params: dict[str, Any]


def cluster_album(paths: Sequence[Path], out: Path, options: AlbumOptions | None = None) -> AlbumReport:
    """Cluster the people in ``paths`` (files or folders) and publish the result folder ``out`` atomically."""
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector

    options = options or AlbumOptions()
    files = collect_images(paths)
    model = choose_model(options.checkpoint, None, device=options.device, batch_size=options.batch_size)
    model.extractor.flip = options.flip
    detector = None if options.crops else choose_detector(options.detector, options.device)
    with OutputStaging(out) as staging:
        items: list[OutputItem] = []
        frames: list[str | None] = []
        features: list[np.ndarray] = []
        found = sightings(files, detector)
        while chunk := list(islice(found, _CHUNK)):
            features.append(model.extractor([s.crop for s in chunk]))
            for sighting in chunk:
                staging.thumbnail(len(items), sighting.crop)
                items.append(sighting.item)
                frames.append(sighting.frame)
        if not items:
            raise ConfigError(f"no person found in the {len(files)} photos; pass --crops if they are person crops")
        # A photo's folder is its camera (cam1/, cam2/ ...): only camera-aware neighbourhoods read it.
        cameras = [str(Path(item.path).parent) for item in items] if options.cluster.camera_aware else None
        result = cluster_features(np.concatenate(features), options.cluster, frames=frames, cameras=cameras)
        params = {
            "source": "crops" if options.crops else "photos",
            "model": model.source,
            "detector": None if detector is None else detector.name,
            "flip": options.flip,
            "options": asdict(options.cluster),
        }
        staging.publish(items, result, params)
    return AlbumReport(out, len(files), len(items), result.num_clusters, result.num_unclustered, model.source,
                       model.warning, {**params, **result.params})
