"""``reidkit ingest --embed-backend onnxruntime`` on a short real clip, then ``reidkit search`` with ONNX Runtime and
with PyTorch: the store records the model id PyTorch gives the checkpoint, and both query backends find a stored
crop's own track first (ONNX Runtime's features mix with PyTorch's, as the backends promise)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import cut_clip, scratch_mgn  # tests/ is on sys.path (rootdir conftest)

from reidkit.inference import FeatureExtractor
from reidkit.models.model_file import model_payload, save_checkpoint
from reidkit.store.writer import Store

pytest.importorskip("onnxruntime")


def reidkit(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reidkit", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # three commands, each loading torch
def test_ingest_and_search_with_onnxruntime(vtest_video: Path, shared_dir: Path, tmp_path: Path) -> None:
    model, card = scratch_mgn(4, (64, 32))
    checkpoint = tmp_path / "mgn.pt"
    save_checkpoint(checkpoint, model_payload(model, card))
    clip = cut_clip(vtest_video, tmp_path / "clip.mp4", 0, 12)
    db = tmp_path / "store"
    ingested = reidkit("ingest", clip, "--camera", "cam1", "--db", db, "--checkpoint", checkpoint, "--quiet",
                       "--embed-backend", "onnxruntime", cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    with Store.open(db) as store:
        assert store.model is not None and store.model.model_id == FeatureExtractor(checkpoint).model_id
        (track_id, crops) = store.db.execute(
            "SELECT id, num_crops FROM tracks ORDER BY num_crops DESC LIMIT 1"
        ).fetchone()
        assert crops >= 3
        crop = db / store.track_detections(track_id)[1].crop_path
    for backend in ("onnxruntime", "torch"):
        found = reidkit("search", crop, "--db", db, "--top-k", "3", "--json", "--embed-backend", backend, cwd=tmp_path)
        assert found.returncode == 0, found.stderr[-3000:]
        assert json.loads(found.stdout)["hits"][0]["track_id"] == track_id, backend
    refused = reidkit("search", crop, "--db", db, "--embed-backend", "tensorrt", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "error: --embed-backend 'tensorrt': use auto, torch, openvino, onnxruntime" in refused.stderr


def test_auto_takes_the_first_installed_runtime_and_says_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uninstalling a runtime cannot happen inside the test run, so ``find_spec`` is told they are absent."""
    import importlib.util

    from reidkit.inference import model_choice

    model, card = scratch_mgn(4, (64, 32))
    checkpoint = tmp_path / "mgn.pt"
    save_checkpoint(checkpoint, model_payload(model, card))
    assert model_choice.resolve_backend("auto", "cpu") == model_choice.AUTO_CPU_BACKENDS[0]
    assert model_choice.resolve_backend("auto", "cuda") == "torch"
    real = importlib.util.find_spec
    absent = set(model_choice.AUTO_CPU_BACKENDS[:1])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a))
    assert model_choice.resolve_backend("auto", "cpu") == model_choice.AUTO_CPU_BACKENDS[1]
    assert model_choice.choose_model(checkpoint, None, backend="auto").warning is None
    absent.update(model_choice.AUTO_CPU_BACKENDS)
    choice = model_choice.choose_model(checkpoint, None, backend="auto")
    assert choice.warning == model_choice.NO_RUNTIME_WARNING
    assert choice.extractor([np.zeros((128, 64, 3), dtype=np.uint8)]).shape == (1, choice.extractor.feature_dim)
