"""The trainer on real data: it learns, it resumes bit for bit, and its batched augmentation does what it says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.data import ReidDataset
from reidkit.errors import ConfigError
from reidkit.inference import FeatureExtractor, evaluate_on_dataset
from reidkit.models import build_model
from reidkit.models.model_file import load_checkpoint, save_checkpoint
from reidkit.training.gpu_batches import ERASE_SCALE, BatchAugment
from reidkit.training.optim import lr_factor
from reidkit.training.runtime import cpu_bf16_fallback, cpu_has_native_bf16, resolve_amp, resolve_device
from reidkit.data.subset import subset_identities
from reidkit.training.trainer import Trainer


def seen_identity_split(dataset: ReidDataset, num_ids: int) -> ReidDataset:
    """Train on the first ``num_ids`` train identities and test retrieval among those same crops.

    Per identity and camera the first crop is a query and the rest are gallery, so Rank-1 measures whether the
    network learnt to match the identities it was trained on across the camera pair.
    """
    train = subset_identities(dataset, num_ids, None).train
    query, gallery, seen = [], [], set()
    for record in train:
        key = (record.pid, record.camid)
        (gallery if key in seen else query).append(record)
        seen.add(key)
    return replace(dataset, train=train, query=query, gallery=gallery, multi_query=[])


def config(tmp_path: Path, *overrides: str) -> ExperimentConfig:
    base = [
        "data.height=64", "data.width=32", "data.workers=0", "data.test_batch_size=64",
        "model.backbone=mobilenetv2", "model.kwargs.part_stride=2",
        "optim.name=adam", "optim.lr=3.5e-4", "optim.milestones=[]", "loss.label_smoothing=0.1",
        f"train.output_dir={tmp_path}", "train.progress=false", "train.tensorboard=false", "train.eval_every=1",
    ]
    return apply_overrides(ExperimentConfig(), [*base, *overrides])


@pytest.mark.slow
def test_short_training_learns_the_identities(cuhk03_dataset: ReidDataset, tmp_path: Path) -> None:
    dataset = seen_identity_split(cuhk03_dataset, 16)
    cfg = config(
        tmp_path, "data.ids_per_batch=8", "data.images_per_id=4", "data.cache_in_memory=true", "data.pad=0",
        "data.random_erasing=0", "loss.head_reduction=mean", "model.pretrained=imagenet", "train.epochs=12",
        "train.eval_every=12",
    )
    result = Trainer(cfg, dataset=dataset, echo=lambda _: None).fit()
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    # Chance Rank-1: the fraction of a query's valid gallery crops that show its identity (~1/16 here).
    g_pids = np.array([r.pid for r in dataset.gallery])
    g_cams = np.array([r.camid for r in dataset.gallery])
    chance = np.mean([
        np.mean(g_pids[~((g_pids == q.pid) & (g_cams == q.camid))] == q.pid) for q in dataset.query
    ])
    assert result.metrics["rank1"] > max(0.25, 4 * chance), (result.metrics["rank1"], chance)
    out = result.output_dir
    for name in ("last.pt", "best.pt", "metrics.csv", "curves.png", "config.yaml", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "metrics.csv").read_text().count("\n") == 1 + 12


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "dataloader"])
def test_resume_after_interruption_matches_an_uninterrupted_run(
    cuhk03_dataset: ReidDataset, tmp_path: Path, cached: bool
) -> None:
    dataset = subset_identities(cuhk03_dataset, 8, 4)
    common = [
        "data.ids_per_batch=4", "data.images_per_id=2", f"data.cache_in_memory={str(cached).lower()}",
        "model.pretrained=null", "train.seed=7",
    ]
    straight = Trainer(config(tmp_path / "straight", *common, "train.epochs=2"), dataset=dataset, echo=lambda _: None)
    straight.fit()
    # The interrupted run stops after epoch 1 exactly as a killed one would leave it: last.pt of epoch 1 on disk.
    cut = tmp_path / "cut"
    Trainer(config(cut, *common, "train.epochs=1"), dataset=dataset, echo=lambda _: None).fit()
    assert load_checkpoint(cut / "last.pt")["epoch"] == 1
    Trainer(config(cut, *common, "train.epochs=2"), dataset=dataset, echo=lambda _: None).fit(resume=True)

    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(cut / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    state_a, state_b = a["model"]["state_dict"], b["model"]["state_dict"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    opt_a, opt_b = a["training_state"]["optimizer"]["state"], b["training_state"]["optimizer"]["state"]
    for index in opt_a:
        for name, value in opt_a[index].items():
            assert torch.equal(value, opt_b[index][name]), (index, name)
    assert [row["loss"] for row in a["history"]] == [row["loss"] for row in b["history"]]


def test_a_finished_run_is_not_overwritten_and_resume_checks_the_config(
    cuhk03_dataset: ReidDataset, tmp_path: Path
) -> None:
    dataset = subset_identities(cuhk03_dataset, 4, 2)
    common = ["data.ids_per_batch=4", "data.images_per_id=2", "model.pretrained=null", "train.epochs=1"]
    Trainer(config(tmp_path, *common), dataset=dataset, echo=lambda _: None).fit()
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(config(tmp_path, *common), dataset=dataset, echo=lambda _: None).fit()
    with pytest.raises(ConfigError, match="optim.lr"):
        Trainer(config(tmp_path, *common, "optim.lr=0.1"), dataset=dataset, echo=lambda _: None).fit(resume=True)
    with pytest.raises(ConfigError, match="does not exist"):
        Trainer(config(tmp_path / "empty", *common), dataset=dataset, echo=lambda _: None).fit(resume=True)
    # A run saved before a config key existed resumes: the missing key reads as its default, not as a change.
    payload = load_checkpoint(tmp_path / "last.pt")
    del payload["config"]["model"]["init_checkpoint"]
    save_checkpoint(tmp_path / "last.pt", {k: v for k, v in payload.items() if k not in ("format", "version")})
    longer = config(tmp_path, *common, "train.epochs=2")
    assert Trainer(longer, dataset=dataset, echo=lambda _: None).fit(resume=True).epochs_done == 2


def test_frozen_trunk_layers_stay_imagenet_and_openvino_evaluation_matches_torch(
    cuhk03_dataset: ReidDataset, tmp_path: Path
) -> None:
    pytest.importorskip("openvino")
    dataset = subset_identities(cuhk03_dataset, 8, 4)
    cfg = config(
        tmp_path, "data.ids_per_batch=4", "data.images_per_id=2", "model.pretrained=imagenet",
        "model.freeze_layers=7", "train.epochs=1", "train.eval_backend=openvino",
    )
    result = Trainer(cfg, dataset=dataset, echo=lambda _: None).fit()
    trained = load_checkpoint(result.last_checkpoint)["model"]["state_dict"]
    imagenet = build_model("mgn", 8, backbone="mobilenetv2", pretrained="imagenet", kwargs={"part_stride": 2})
    trunk = {key: value for key, value in imagenet.state_dict().items() if key.startswith("shared.")}
    frozen = [key for key in trunk if int(key.split(".")[1]) < 7]
    assert frozen and all(torch.equal(trained[key], trunk[key]) for key in frozen)  # BN statistics too
    assert any(not torch.equal(trained[key], trunk[key]) for key in set(trunk) - set(frozen))
    # The trainer's OpenVINO evaluation of its live model agrees with PyTorch on the saved checkpoint.
    reference = evaluate_on_dataset(FeatureExtractor(result.last_checkpoint), dataset).summary
    assert result.metrics["model_id"] == reference["model_id"]
    assert result.metrics["mAP"] == pytest.approx(reference["mAP"], abs=1e-3)


def batch(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (16, 3, 32, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def normalised(images: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_batch_augment_without_augmentation_only_normalises() -> None:
    images = batch()
    out = BatchAugment(MEAN, STD, flip=False, pad=0, erasing=0.0)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalised(images))


def test_batch_augment_flips_about_half_and_is_reproducible() -> None:
    images = batch()
    augment = BatchAugment(MEAN, STD, flip=True, pad=0, erasing=0.0)
    out = augment(images, torch.Generator().manual_seed(1))
    plain, mirrored = normalised(images), normalised(images.flip(-1))
    flipped = [bool(torch.allclose(o, m)) for o, m in zip(out, mirrored, strict=True)]
    kept = [bool(torch.allclose(o, p)) for o, p in zip(out, plain, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each image is exactly one of the two
    assert 0 < sum(flipped) < len(flipped)
    torch.testing.assert_close(augment(images, torch.Generator().manual_seed(1)), out, rtol=0, atol=0)


def test_batch_augment_crops_windows_of_the_padded_image() -> None:
    images, pad = batch(), 3
    out = BatchAugment(MEAN, STD, flip=False, pad=pad, erasing=0.0)(images, torch.Generator().manual_seed(2))
    padded = normalised(torch.nn.functional.pad(images, (pad, pad, pad, pad)))
    height, width = images.shape[2:]
    offsets = []
    for o, p in zip(out, padded, strict=True):
        windows = [
            (dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            if torch.allclose(o, p[:, dy : dy + height, dx : dx + width])
        ]
        assert windows, "output is not a window of the padded image"
        offsets.append(windows[0])
    assert len(set(offsets)) > 1


def test_batch_augment_erases_one_zero_rectangle_of_bounded_area() -> None:
    images = torch.full((64, 3, 32, 16), 200, dtype=torch.uint8)  # no pixel normalises to exactly 0
    out = BatchAugment(MEAN, STD, flip=False, pad=0, erasing=0.5)(images, torch.Generator().manual_seed(3))
    erased = (out == 0).all(dim=1)  # (B, H, W)
    counts = erased.flatten(1).sum(1)
    assert 10 < int((counts > 0).sum()) < 54  # p = 0.5 of 64 images
    for mask in erased[counts > 0]:
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all())  # one solid rectangle
        assert int(mask.sum()) <= ERASE_SCALE[1] * 32 * 16 * 1.5


def test_lr_schedule_warms_up_then_steps() -> None:
    cfg = apply_overrides(
        ExperimentConfig(), ["optim.warmup_epochs=4", "optim.warmup_factor=0.2", "optim.milestones=[10, 20]"]
    ).optim
    assert lr_factor(cfg, 0) == pytest.approx(0.2)
    assert lr_factor(cfg, 2) == pytest.approx(0.6)
    assert [lr_factor(cfg, e) for e in (4, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])


def test_cosine_schedule_decays_to_zero_at_its_epoch_and_is_read_mid_epoch() -> None:
    cfg = apply_overrides(ExperimentConfig(), ["optim.milestones=[]", "optim.cosine_epochs=4"]).optim
    factors = [lr_factor(cfg, e) for e in range(6)]
    assert factors[:4] == pytest.approx([0.9619, 0.6913, 0.3087, 0.0381], abs=1e-4)
    assert factors[4:] == [0.0, 0.0]
    warm = apply_overrides(
        ExperimentConfig(), ["optim.milestones=[]", "optim.cosine_epochs=3", "optim.warmup_epochs=1"]
    ).optim
    assert [lr_factor(warm, e) for e in range(3)] == pytest.approx([0.1, 0.8536, 0.1464], abs=1e-4)


def test_cpu_autocasts_only_native_bf16_and_refuses_missing_cuda() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("none", cpu) is None
    assert resolve_amp("bf16", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert cpu_bf16_fallback("bf16", cpu) is not cpu_has_native_bf16()
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_amp("fp16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")
