"""Adaptation on real crops: rounds cluster the unlabelled target and train on the clusters; a stopped run resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.data import ReidDataset
from reidkit.errors import ConfigError
from reidkit.inference import untrained_model
from reidkit.models.model_file import load_checkpoint, load_model, model_payload, save_checkpoint
from reidkit.training.adaptation import AdaptOptions, TargetCrops, adapt
from reidkit.data.subset import subset_identities


def recipe(tmp_path: Path) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(), [
        "data.height=64", "data.width=32", "data.workers=0", "data.ids_per_batch=4", "data.images_per_id=4",
        "data.cache_in_memory=true", "data.pad=0", "data.random_erasing=0", "model.name=bnneck",
        "model.backbone=mobilenetv2", "model.pretrained=imagenet", "optim.name=adam", "optim.lr=3.5e-4",
        "optim.milestones=[]", f"train.output_dir={tmp_path}", "train.progress=false", "train.tensorboard=false",
    ])


@pytest.fixture(scope="module")
def source_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, card = untrained_model("bnneck", "mobilenetv2", 64, 32)
    path = tmp_path_factory.mktemp("source") / "source.pt"
    save_checkpoint(path, model_payload(model, card))
    return path


@pytest.mark.slow
def test_rounds_train_on_clusters_and_resume(cuhk03_dataset: ReidDataset, source_model: Path, tmp_path: Path) -> None:
    target = subset_identities(cuhk03_dataset, 24, None).train
    crops = TargetCrops.from_records(target)
    out = tmp_path / "adapt"
    options = AdaptOptions(rounds=1, epochs_per_round=1)
    first = adapt(recipe(tmp_path), source_model, crops, out, tmp_path / "a.pt", options, echo=lambda _: None)
    report = first.rounds[0]
    assert report.clusters >= 4 and report.clustered_crops + report.unclustered_crops == len(target)
    labels = np.asarray(json.loads((out / "round0" / "pseudo_labels.json").read_text())["labels"])
    assert labels.shape == (len(target),) and report.clustered_crops == int((labels >= 0).sum())
    # The round trained the source's weights (not ImageNet's afresh) and the result is a weights-only model file.
    adapted, card = load_model(first.model_file)
    source, _ = load_model(source_model)
    assert "training_state" not in load_checkpoint(first.model_file)
    assert str(source_model) in card.backbone_init
    changed = [k for k, v in adapted.state_dict().items() if k in source.state_dict()
               and v.shape == source.state_dict()[k].shape and not torch.equal(v, source.state_dict()[k])]
    assert changed

    # A longer run over the same folder keeps the finished round as it is and adds the next one.
    stamp = (out / "round0" / "last.pt").stat().st_mtime_ns
    second = adapt(recipe(tmp_path), source_model, crops, out, tmp_path / "b.pt", AdaptOptions(rounds=2, epochs_per_round=1),
                   echo=lambda _: None)
    assert (out / "round0" / "last.pt").stat().st_mtime_ns == stamp
    assert [r.round for r in second.rounds] == [0, 1] and (out / "round1" / "done.json").is_file()
    assert second.model_file == tmp_path / "b.pt" and second.model_file.is_file()


def test_target_crops_checked(cuhk03_dataset: ReidDataset) -> None:
    records = cuhk03_dataset.train[:3]
    with pytest.raises(ConfigError, match="2 cameras for 3 crops"):
        TargetCrops([r.path for r in records], [0, 1])
    with pytest.raises(ConfigError, match="none given"):
        TargetCrops([], [])
    with pytest.raises(ConfigError, match="rounds >= 1"):
        AdaptOptions(rounds=0)
