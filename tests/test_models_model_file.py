"""The model file: rebuilt from the file alone they give the same features; writes are atomic; foreign files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reidkit.errors import ModelError
from reidkit.inference import FeatureExtractor
from reidkit.models.model_file import (
    ModelCard,
    build_from_checkpoint,
    load_checkpoint,
    load_matching_weights,
    model_id,
    model_payload,
    save_checkpoint,
    save_weights_only,
    weights_only_copy,
)

from conftest import scratch_mgn  # tests/ is on sys.path (rootdir conftest)

SIZE = (64, 32)


def crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8) for _ in range(count)]


def test_rebuilt_model_gives_identical_features(tmp_path: Path) -> None:
    model, card = scratch_mgn(5, SIZE)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {**model_payload(model, card), "epoch": 3, "metrics": {"mAP": 0.5}})
    payload = load_checkpoint(path)
    rebuilt, rebuilt_card = build_from_checkpoint(payload)
    assert rebuilt_card == card
    assert payload["epoch"] == 3 and payload["metrics"] == {"mAP": 0.5}
    original = model.state_dict()
    for key, tensor in rebuilt.state_dict().items():
        assert torch.equal(tensor, original[key]), key
    images = crops(4)
    from_model = FeatureExtractor(model, card=card)(images)
    from_file = FeatureExtractor(path)(images)
    assert np.array_equal(from_model, from_file)
    assert model_id(rebuilt, rebuilt_card) == model_id(model, card)


def test_model_id_tracks_weights_and_preprocessing() -> None:
    model, card = scratch_mgn(5, SIZE)
    before = model_id(model, card)
    assert model_id(model, card) == before
    assert model_id(model, ModelCard(card.spec, (128, 64), card.mean, card.std, card.backbone_init)) != before
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert model_id(model, card) != before


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1})
    with pytest.raises(Exception):
        save_checkpoint(path, {"epoch": 2, "unpicklable": lambda: None})
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left behind


def test_foreign_and_damaged_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        load_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(ModelError, match="not a reidkit checkpoint"):
        load_checkpoint(plain)
    model, card = scratch_mgn(5, SIZE)
    save_checkpoint(tmp_path / "ok.pt", model_payload(model, card))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((tmp_path / "ok.pt").read_bytes()[:5000])
    with pytest.raises(ModelError, match=str(truncated)):
        load_checkpoint(truncated)


def test_weights_that_do_not_fit_the_spec_are_refused(tmp_path: Path) -> None:
    model, card = scratch_mgn(5, SIZE)
    wrong = ModelCard({**card.spec, "num_classes": 7}, card.input_size, card.mean, card.std, card.backbone_init)
    save_checkpoint(tmp_path / "wrong.pt", model_payload(model, wrong))
    with pytest.raises(ModelError):
        build_from_checkpoint(load_checkpoint(tmp_path / "wrong.pt"))


def test_weights_only_copy_drops_training_state_and_rebuilds_the_same_model(tmp_path: Path) -> None:
    model, card = scratch_mgn(5, SIZE)
    full = {**model_payload(model, card), "epoch": 3, "training_state": {"optimizer": {"x": torch.ones(1000)}}}
    save_checkpoint(tmp_path / "last.pt", full)
    copy = save_weights_only(tmp_path / "last.pt", tmp_path / "share.pt")
    payload = load_checkpoint(copy)
    assert "training_state" not in payload and payload["epoch"] == 3
    assert "training_state" not in weights_only_copy(full) and "training_state" in full
    rebuilt, rebuilt_card = build_from_checkpoint(payload)
    assert model_id(rebuilt, rebuilt_card) == model_id(model, card)
    assert copy.stat().st_size < (tmp_path / "last.pt").stat().st_size


def test_matching_weights_start_a_run_from_another_runs_model(tmp_path: Path) -> None:
    """Adaptation / fine-tuning: everything but the classifier heads (sized for other identities) is copied."""
    from reidkit.models import build_model

    source, card = scratch_mgn(5, SIZE)
    path = tmp_path / "source.pt"
    save_checkpoint(path, model_payload(source, card))
    target = build_model("mgn", 9, backbone="mobilenetv2", kwargs={"part_stride": 2})
    copied, fresh = load_matching_weights(target, path)
    heads = [k for k, v in target.state_dict().items() if source.state_dict()[k].shape != v.shape]
    assert heads and sorted(heads) == fresh
    assert copied == len(target.state_dict()) - len(heads)
    for key, value in target.state_dict().items():
        if key not in fresh:
            assert torch.equal(value, source.state_dict()[key]), key
    with pytest.raises(ModelError, match="init_checkpoint must hold the name"):
        load_matching_weights(build_model("bnneck", 9, backbone="mobilenetv2"), path)
