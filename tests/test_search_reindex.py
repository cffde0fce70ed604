"""Re-embedding a real store under another model (``reidkit reindex``) and adapting a model to a store's tracks
(``reidkit adapt --db``): the switch is atomic, a killed reindex loses nothing and resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.config import ExperimentConfig, apply_overrides
from reidkit.inference import FeatureExtractor, untrained_model
from reidkit.models.model_file import load_model, model_payload, save_checkpoint
from reidkit.search.grouping import group_store
from reidkit.search.people import clustering
from reidkit.search.reindex import side_file
from reidkit.search.search import search_store
from reidkit.search.track_crops import track_crops
from reidkit.store.rows import normalise_rows
from reidkit.store.writer import Store


@pytest.fixture(scope="module")
def new_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BNNeck-MobileNetV2 at 64x32 (1280-d): another model id and another feature size than the store's MGN."""
    model, card = untrained_model("bnneck", "mobilenetv2", 64, 32)
    path = tmp_path_factory.mktemp("new-model") / "bnneck.pt"
    save_checkpoint(path, model_payload(model, card))
    return path


def copy_store(small_store: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_store, tmp_path / "store"))


def stored(root: Path) -> tuple[dict[int, bytes], dict[int, bytes], str | None]:
    with Store.open(root) as store:
        detections = dict(store.db.execute("SELECT id, feature FROM detections"))
        tracks = dict(store.db.execute("SELECT id, feature_sum FROM tracks"))
        return detections, tracks, store.meta_value("model_id")


def exact_crop_search(root: Path, extractor: FeatureExtractor) -> tuple[int, list[int]]:
    """The track of a mid-track crop, and the tracks a search with that crop's feature under ``extractor`` ranks."""
    with Store.open(root) as store:
        assert store.integrity_problems() == []
        track_id = int(store.db.execute("SELECT track_id FROM detections GROUP BY track_id "
                                        "ORDER BY COUNT(*) DESC LIMIT 1").fetchone()[0])
        row = store.track_detections(track_id)[len(store.track_detections(track_id)) // 2]
        query = normalise_rows(extractor([store.crop_file(row)]))[0]
        result = search_store(store, query, top_k=5)
    return track_id, [hit.track.id for hit in result.hits]


@pytest.mark.slow
def test_reindex_switches_every_feature_to_the_new_model(small_store: Path, new_model: Path, tmp_path: Path) -> None:
    root = copy_store(small_store, tmp_path)
    old_detections, _, old_id = stored(root)
    old_vectors = shutil.copytree(root / "vectors", tmp_path / "old-vectors")
    with Store.open(root, writable=True) as store:
        group_store(store)  # people clustered under the old model
    live = Store.open(root)  # a long-lived reader (as the service keeps) open across the reindex
    seen = live.commit_seq
    done = CliRunner().invoke(app, ["reindex", "--db", str(root), "--checkpoint", str(new_model),
                                    "--embed-backend", "torch", "--batch-size", "16", "--quiet"])
    assert done.exit_code == 0, done.output
    assert f"run `reidkit cluster --db {root}` again" in done.output  # the old model's people went with its features
    extractor = FeatureExtractor(new_model, progress=False)
    with live:
        live.vectors.refresh(seen)  # the reader follows the switch to the other feature size
        assert live.index("crops").dim == 1280 and live.integrity_problems() == []
    with Store.open(root) as store:
        model = store.model
        assert model is not None and model.model_id == extractor.model_id != old_id
        assert model.feature_dim == extractor.feature_dim == 1280 and model.source == str(new_model.resolve())
        assert clustering(store) is None and store.count_rows("track_people") == 0
        assert f"{len(old_detections)} crops ({len(old_detections)} computed by this run)" in done.output
        rows = store.detections(store.detection_ids())
        ids = sorted(rows)
        expected = normalise_rows(extractor([store.crop_file(rows[i]) for i in ids]))
        got = store.detection_features(np.array(ids))[1]
        np.testing.assert_allclose(got, expected, atol=1e-5)
        # each track vector is the quality-weighted mean of its crops' new features, normalised
        for track_id in store.track_ids():
            crops = store.track_detections(int(track_id))
            weights = np.array([max(c.quality, 1e-3) for c in crops], dtype=np.float32)
            mean = (weights[:, None] * expected[[ids.index(c.id) for c in crops]]).sum(0)
            np.testing.assert_allclose(store.track_vectors(np.array([track_id]))[1][0],
                                       mean / np.linalg.norm(mean), atol=1e-5)
        assert store.index("crops").dim == 1280 and store.index("tracks").count == len(store.track_ids())
    assert not list((root / "reindex").glob("*.sqlite"))  # the side file went once the switch was done
    track_id, ranked = exact_crop_search(root, extractor)
    assert ranked[0] == track_id
    # a kill after the switch, before the new index files were saved, left the old 2048-d files: readers rebuild
    # in memory, and the next writer's open rebuilds and saves them
    shutil.rmtree(root / "vectors")
    shutil.copytree(old_vectors, root / "vectors")
    assert exact_crop_search(root, extractor)[1][0] == track_id
    # running the same reindex again embeds nothing and saves the repaired indexes
    again = CliRunner().invoke(app, ["reindex", "--db", str(root), "--checkpoint", str(new_model), "--quiet",
                                     "--embed-backend", "torch"])
    assert again.exit_code == 0 and "(0 computed by this run)" in again.output, again.output
    with Store.open(root) as store:
        assert store.index("tracks").dim == 1280 and store.index("tracks").commit_seq == store.commit_seq


_KILLED_REINDEX = """
import os, signal, sys
from reidkit.inference.model_choice import choose_model
from reidkit.search.reindex import reindex_store
from reidkit.store.writer import Store

def die_after(done):
    if done >= int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill, mid-way, after some batches were committed

with Store.open(sys.argv[1], writable=True) as store:
    choice = choose_model(sys.argv[2], store.model, batch_size=4, backend="torch")
    reindex_store(store, choice.extractor, choice.source, batch_size=4, progress=False, on_batch=die_after)
"""


@pytest.mark.slow
def test_a_killed_reindex_loses_nothing_and_resumes(small_store: Path, new_model: Path, tmp_path: Path) -> None:
    root = copy_store(small_store, tmp_path)
    before = stored(root)
    old_extractor = FeatureExtractor(untrained_model("mgn", "mobilenetv2", 256, 128)[0],
                                     card=untrained_model("mgn", "mobilenetv2", 256, 128)[1], progress=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", _KILLED_REINDEX, str(root), str(new_model), "12"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    extractor = FeatureExtractor(new_model, progress=False)
    side = side_file(root, extractor.model_id)
    assert side.is_file()
    # the store is exactly as it was: old model, old features; a search under the old model still works
    assert stored(root) == before
    track_id, ranked = exact_crop_search(root, old_extractor)
    assert ranked[0] == track_id

    resumed = CliRunner().invoke(app, ["reindex", "--db", str(root), "--checkpoint", str(new_model),
                                       "--embed-backend", "torch", "--batch-size", "4", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    total = len(before[0])
    assert f"{total} crops ({total - 12} computed by this run)" in resumed.output
    detections, _, model_id = stored(root)
    assert model_id == extractor.model_id and not side.exists()
    with Store.open(root) as store:
        ids = sorted(detections)
        rows = store.detections(ids)
        expected = normalise_rows(extractor([store.crop_file(rows[i]) for i in ids]))
        np.testing.assert_allclose(store.detection_features(np.array(ids))[1], expected, atol=1e-5)
    assert exact_crop_search(root, extractor)[1][0] == track_id


def test_track_crops_link_tracks_and_separate_frames(small_store: Path) -> None:
    with Store.open(small_store) as store:
        crops = track_crops(store)
        assert len(crops.paths) == store.count_rows("detections") and all(p.is_file() for p in crops.paths)
        assert set(crops.cameras) == {"cam1"} and set(crops.tracks) == {int(t) for t in store.track_ids()}
        for path, track, (video, frame) in zip(crops.paths, crops.tracks, crops.frames):
            row = store.frame_detections(video, frame)
            assert any(r.track_id == track and store.crop_file(r) == path for r in row)


@pytest.mark.slow
def test_adapt_on_a_store_writes_a_model(small_store: Path, tmp_path: Path) -> None:
    recipe = apply_overrides(ExperimentConfig(), [
        "data.height=64", "data.width=32", "data.workers=0", "data.ids_per_batch=2", "data.images_per_id=2",
        "data.cache_in_memory=true", "data.pad=0", "data.random_erasing=0", "model.name=bnneck",
        "model.backbone=mobilenetv2", "model.pretrained=imagenet", "optim.name=adam", "optim.lr=3.5e-4",
        "optim.milestones=[]", f"train.output_dir={tmp_path}", "train.progress=false", "train.tensorboard=false",
    ])
    model, card = untrained_model("bnneck", "mobilenetv2", 64, 32)
    source = tmp_path / "source.pt"
    save_checkpoint(source, {**model_payload(model, card), "config": recipe.to_dict()})
    out = tmp_path / "adapted.pt"
    done = CliRunner().invoke(app, ["adapt", "--db", str(small_store), "--checkpoint", str(source), "--out", str(out),
                                    "--rounds", "1", "--epochs-per-round", "1"])
    assert done.exit_code == 0, done.output
    assert "pseudo identities over" in done.output and out.is_file()
    adapted, _ = load_model(out)
    assert adapted.feature_dim == 1280
    # the round's pseudo identities kept the footage's constraints: a track is one identity, a frame's crops differ
    labels = json.loads((tmp_path / "adapted.rounds" / "round0" / "pseudo_labels.json").read_text())["labels"]
    with Store.open(small_store) as store:
        crops = track_crops(store)
    by_track: dict[int, set[int]] = {}
    by_frame: dict[tuple[int, int], list[int]] = {}
    for label, track, frame in zip(labels, crops.tracks, crops.frames):
        by_track.setdefault(track, set()).add(label)
        if label >= 0:
            by_frame.setdefault(frame, []).append(label)
    assert all(len(found) == 1 for found in by_track.values())
    assert all(len(found) == len(set(found)) for found in by_frame.values())
    assert max(labels) >= 1  # at least two identities
    # too few clusters for the batch: one line naming the option, not a traceback
    crowded = CliRunner().invoke(app, ["adapt", "--db", str(small_store), "--checkpoint", str(source), "--out",
                                       str(tmp_path / "b.pt"), "--rounds", "1", "--work-dir", str(tmp_path / "w2"),
                                       "data.ids_per_batch=500"])
    assert crowded.exit_code != 0 and "data.ids_per_batch=500" in str(crowded.exception)


@pytest.mark.slow
def test_reindex_of_a_milvus_store(small_store: Path, new_model: Path, tmp_path: Path) -> None:
    from reidkit.search.reindex import reindex_store
    from reidkit.store.backend_move import move_store

    root = copy_store(small_store, tmp_path)
    extractor = FeatureExtractor(new_model, progress=False)
    with Store.open(root, writable=True) as store:
        move_store(store, "milvus")
        report = reindex_store(store, extractor, str(new_model), batch_size=32, progress=False)
        assert report.feature_dim == 1280 and report.computed == report.detections == store.count_rows("detections")
    with Store.open(root) as store:
        assert store.location.backend == "milvus" and store.index("crops").dim == 1280
        assert store.index("tracks").count == report.tracks == store.count_rows("tracks")
    track_id, ranked = exact_crop_search(root, extractor)
    assert ranked[0] == track_id
