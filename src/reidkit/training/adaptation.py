"""Unsupervised domain adaptation: a model learns a new site's cameras from its unlabelled crops.

Each round extracts the target crops' features with the current model, clusters them into pseudo identities
(``reidkit.clustering``: k-reciprocal Jaccard DBSCAN, camera-normalised, with the must-link / cannot-link
constraints the footage gives for free) and trains on those identities for a few epochs with the run's own recipe
(softmax on fresh heads sized for the clusters, plus the batch-hard triplet), starting from the previous round's
weights. Crops that no cluster takes are left out of the round, not forced into the nearest cluster: a wrong
pseudo label teaches the model a wrong match, a missing one only teaches nothing. As the features improve, the
clusters do, and the next round trains on cleaner labels.

Nothing here looks at target identities: the clustering's parameters come from the features themselves, and the
rounds' number and length are fixed in advance. An evaluation split, when given, is only reported.

A round leaves ``round<N>/`` (the Trainer's run, resumable) with ``pseudo_labels.json``; ``done.json`` marks it
complete, so a killed adaptation resumes at the round (and inside it, at the epoch) where it stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from reidkit.atomic_file import write_atomic
from reidkit.clustering import ClusterOptions, ClusterResult, cluster_features
from reidkit.config import ExperimentConfig
from reidkit.data import ImageRecord, ReidDataset
from reidkit.errors import ConfigError
from reidkit.inference import FeatureExtractor
from reidkit.models.model_file import save_weights_only
from reidkit.training.hooks import LAST
from reidkit.training.runtime import resolve_device
from reidkit.training.trainer import Trainer

DONE, LABELS = "done.json", "pseudo_labels.json"


@dataclass(frozen=True)
class TargetCrops:
    """The unlabelled crops of the new site: paths and cameras, and optionally what the footage says for free.

    ``groups``: must-link keys (crops of one track are one person); ``frames``: cannot-link keys (crops of one
    frame are different people). ``None`` entries carry no constraint.
    """

    paths: list[Path]
    cameras: list[Hashable]
    groups: list[Hashable | None] | None = None
    frames: list[Hashable | None] | None = None

    def __post_init__(self) -> None:
        for name in ("cameras", "groups", "frames"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.paths):
                raise ConfigError(f"target crops: {len(values)} {name} for {len(self.paths)} crops; give one per crop")
        if not self.paths:
            raise ConfigError("target crops: none given; adaptation needs the new site's crops")

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord]) -> TargetCrops:
        """A dataset split's crops with their cameras; the identities in the records are NOT used."""
        return cls([r.path for r in records], [r.camid for r in records])


def adaptation_clustering(method: str = "dbscan-jaccard", camera_norm: bool = True) -> ClusterOptions:
    """The pseudo-labels' clustering as the adaptation was measured with it (docs/adaptation.md): DBSCAN over
    Jaccard distances, k1 20, eps 0.3, cameras normalised; the clustering core's later defaults do not move it."""
    return ClusterOptions(method=method, k1=20, eps=0.3, camera_norm=camera_norm)


@dataclass(frozen=True)
class AdaptOptions:
    """``rounds`` x ``epochs_per_round`` epochs over the pseudo-labelled crops; ``cluster`` says how to cluster."""

    rounds: int = 6
    epochs_per_round: int = 4  # 6 x 4 epochs: about the images the source and oracle runs see (RESULTS.md)
    cluster: ClusterOptions = field(default_factory=lambda: adaptation_clustering())

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.epochs_per_round < 1:
            raise ConfigError(f"adaptation needs rounds >= 1 and epochs_per_round >= 1, got {self.rounds}, "
                              f"{self.epochs_per_round}")


@dataclass
class RoundReport:
    """One round: how the target crops clustered and, when an evaluation split was given, the model after it."""

    round: int
    clusters: int
    clustered_crops: int
    unclustered_crops: int
    cluster_params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class AdaptResult:
    model_file: Path
    rounds: list[RoundReport]


def adapt(
    base: ExperimentConfig,
    checkpoint: Path,
    target: TargetCrops,
    out_dir: Path,
    model_out: Path,
    options: AdaptOptions = AdaptOptions(),
    evaluation: ReidDataset | None = None,
    echo: Callable[[str], None] = print,
) -> AdaptResult:
    """Adapt the model file ``checkpoint`` to ``target``, with the rounds' runs in ``out_dir``; write the result to
    ``model_out`` (weights only, atomically) and return it.

    ``base`` is the training recipe of each round (input size, batches, optimiser, augmentation); its model section
    must name the checkpoint's model. ``evaluation`` (its query / gallery) is evaluated after each round for the
    report only: nothing is chosen by it, the last round's model is the result.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    reports: list[RoundReport] = []
    current = Path(checkpoint)
    for index in range(options.rounds):
        round_dir = out_dir / f"round{index}"
        if (round_dir / DONE).is_file():
            reports.append(RoundReport(**json.loads((round_dir / DONE).read_text())))
        else:
            reports.append(_run_round(base, current, target, round_dir, index, options, evaluation, echo))
        current = round_dir / LAST
    model_out.parent.mkdir(parents=True, exist_ok=True)
    return AdaptResult(save_weights_only(current, model_out), reports)


def _run_round(
    base: ExperimentConfig,
    model_in: Path,
    target: TargetCrops,
    round_dir: Path,
    index: int,
    options: AdaptOptions,
    evaluation: ReidDataset | None,
    echo: Callable[[str], None],
) -> RoundReport:
    round_dir.mkdir(parents=True, exist_ok=True)
    labels_file = round_dir / LABELS
    if labels_file.is_file():  # a killed round: its pseudo labels were fixed before training started
        saved = json.loads(labels_file.read_text())
        labels, params = np.asarray(saved["labels"]), saved["params"]
    else:
        result = pseudo_labels(model_in, target, options.cluster, base)
        labels, params = result.labels, result.params
        _write_json(labels_file, {"labels": labels.tolist(), "params": params})
    kept = np.flatnonzero(labels >= 0)
    camera_index = {c: i for i, c in enumerate(dict.fromkeys(str(c) for c in target.cameras))}
    # pids start at 1: 0 means "distractor" to the dataset readers' conventions.
    train = [ImageRecord(target.paths[i], int(labels[i]) + 1, camera_index[str(target.cameras[i])]) for i in kept]
    clusters = len({r.pid for r in train})
    echo(f"round {index + 1}: {clusters} pseudo identities over {len(kept)} of {len(labels)} crops")
    if clusters < base.data.ids_per_batch:
        raise ConfigError(
            f"round {index + 1}: only {clusters} clusters among the target crops, fewer than data.ids_per_batch="
            f"{base.data.ids_per_batch}; give more target crops or lower data.ids_per_batch"
        )
    dataset = ReidDataset(
        "adaptation-target",
        Path(os.path.commonpath([str(p.parent) for p in target.paths])),
        train,
        list(evaluation.query) if evaluation else [],
        list(evaluation.gallery) if evaluation else [],
        has_cameras=evaluation.has_cameras if evaluation else True,
    )
    epochs = options.epochs_per_round
    config = replace(
        base,
        model=replace(base.model, init_checkpoint=str(model_in)),
        optim=replace(base.optim, cosine_epochs=epochs if base.optim.cosine_epochs else 0),
        train=replace(base.train, output_dir=str(round_dir), epochs=epochs, eval_every=epochs, seed=base.train.seed + index),
    )
    trainer = Trainer(config, dataset=dataset, echo=echo)
    run = trainer.fit(resume=(round_dir / LAST).is_file())
    report = RoundReport(index, clusters, len(kept), len(labels) - len(kept), params, dict(run.metrics))
    _write_json(round_dir / DONE, asdict(report))
    return report


def pseudo_labels(
    checkpoint: Path, target: TargetCrops, options: ClusterOptions, base: ExperimentConfig
) -> ClusterResult:
    """Cluster the target crops' features under the model ``checkpoint``: the round's pseudo identities."""
    device = resolve_device(base.train.device)
    extractor = FeatureExtractor(
        checkpoint,
        device=device,
        batch_size=base.data.test_batch_size,
        workers=base.data.workers,
        progress=base.train.progress,
        backend=base.train.eval_backend if device.type == "cpu" else "torch",
    )
    features = extractor(target.paths, desc="target features")
    return cluster_features(features, options, cameras=target.cameras, groups=target.groups, frames=target.frames)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(payload, indent=1).encode())
