"""Milvus as a store's vector index (real embedded milvus-lite, no mocks): camera / time filters pushed down into
the vector search and agreeing with FAISS, crash repair of a database that writes through, the per-store choice,
and moving a store between FAISS and Milvus (``reidkit store reindex-backend``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.errors import StoreError
from reidkit.search.search import SearchFilters, search_store
from reidkit.store.backend_choice import PENDING_KEY
from reidkit.store.backend_move import move_store
from reidkit.store.index_plan import IndexPlan
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.milvus_index import EMBEDDED_NAME, MilvusIndex, connect, disconnect, filter_expression
from reidkit.store.rows import NewDetection, normalise_rows
from reidkit.store.vector_index import IndexLocation, create_vector_index
from reidkit.store.writer import Store

DIM = 16
START = datetime(2024, 5, 1, 9, 0, 0)
pytest.importorskip("milvus_lite", reason="the [milvus] extra is not installed")
CAMERAS = ("lobby", 'door "B"', "yard")  # a quote in a name must survive the filter expression
REPO_ROOT = Path(__file__).resolve().parents[1]


def _build(root: Path, backend: str = "faiss", seed: int = 0) -> None:
    """Three cameras, four tracks of ten crops each; the yard's video has no start time (fails time filters)."""
    rng = np.random.default_rng(seed)
    with Store.open(root, writable=True, create=True, index=backend) as store:
        store.require_model("model-a", DIM, "imagenet")
        for number, camera in enumerate(CAMERAS):
            start = None if camera == "yard" else START + timedelta(minutes=10 * number)
            video = store.add_video(camera, f"v{number}.avi", f"fp{number}", 0, 100, 1, "hog", start, 1.0, 64, 48)
            rows = []
            for frame in range(10):
                for slot in range(4):
                    crop_path = f"crops/v{video.id:06d}/{frame:07d}_{slot:02d}.jpg"
                    (root / crop_path).parent.mkdir(parents=True, exist_ok=True)
                    (root / crop_path).touch()
                    feature = normalise_rows(rng.standard_normal((1, DIM)).astype(np.float32))[0]
                    rows.append(NewDetection(slot, frame * 30, frame * 30.0, (1, 2, 11, 32), 0.9, 0.6, crop_path,
                                             feature))
            store.commit_chunk(video.id, rows, 9 * 30, {})
            store.finish_video(video.id)
        store.save_indexes()


def _moved_copy(source: Path, target: Path, backend: str) -> Path:
    shutil.copytree(source, target)
    with Store.open(target, writable=True) as store:
        move_store(store, backend)
    return target


def _expected(store: Store, query: np.ndarray, filters: SearchFilters, top_k: int) -> list[int]:
    """The exact answer: tracks ranked by their best crop that passes the filters, over every stored crop."""
    best: dict[int, float] = {}
    ids, features = store.detection_features(store.detection_ids())
    rows = store.detections(ids)
    for det_id, score in zip(ids.tolist(), (features @ query).tolist()):
        row = rows[det_id]
        if filters.admits(row):
            best[row.track_id] = max(best.get(row.track_id, -2.0), score)
    return sorted(best, key=lambda track: -best[track])[:top_k]


FILTERS = [
    SearchFilters(),
    SearchFilters(cameras=('door "B"',)),
    SearchFilters(cameras=("lobby", "yard")),
    SearchFilters(after=START + timedelta(minutes=12)),
    SearchFilters(before=START + timedelta(minutes=3)),
    SearchFilters(cameras=("lobby",), after=START + timedelta(minutes=1), before=START + timedelta(minutes=3)),
    SearchFilters(after=START + timedelta(minutes=1, seconds=30), before=START + timedelta(minutes=1, seconds=30)),
]


@pytest.fixture(scope="module")
def both_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same store in FAISS and (moved with ``move_store``) in Milvus."""
    base = tmp_path_factory.mktemp("milvus-stores")
    _build(base / "faiss")
    return {"faiss": base / "faiss", "milvus": _moved_copy(base / "faiss", base / "milvus", "milvus")}


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_filtered_search_gives_the_exact_answer_on_both_backends(both_stores: dict[str, Path], backend: str) -> None:
    rng = np.random.default_rng(5)
    queries = normalise_rows(rng.standard_normal((4, DIM)).astype(np.float32))
    with Store.open(both_stores[backend]) as store:
        assert store.location.backend == backend
        for filters in FILTERS:
            for query in queries:
                result = search_store(store, query, top_k=5, filters=filters)
                assert [hit.track.id for hit in result.hits] == _expected(store, query, filters, 5), filters
                assert all(filters.admits(hit.best) for hit in result.hits)
        # the empty answer of a time window that only the untimed yard could have matched
        assert search_store(store, queries[0], filters=SearchFilters(cameras=("yard",), after=START)).hits == []


def test_milvus_applies_the_filter_inside_the_vector_search(both_stores: dict[str, Path]) -> None:
    filters = SearchFilters(cameras=("lobby", 'door "B"'), after=START + timedelta(minutes=2))
    assert filter_expression(filters) == (
        'camera in ["lobby", "door \\"B\\""] and last_epoch >= '
        f"{filters.after_epoch - 1e-3!r}"
    )
    query = normalise_rows(np.ones((1, DIM), dtype=np.float32))
    with Store.open(both_stores["milvus"]) as store:
        crops, tracks = store.index(CROP_INDEX), store.index(TRACK_INDEX)
        assert crops.applies_filters and crops.kind == "flat"
        passing = [i for i, row in store.detections(store.detection_ids()).items() if filters.admits(row)]
        ids = crops.search(query, 1000, filters)[1][0]
        assert sorted(ids[ids >= 0].tolist()) == sorted(passing)  # all of them, and nothing else
        track_ids = tracks.search(query, 100, filters)[1][0]
        assert set(track_ids[track_ids >= 0].tolist()) == {store.detections([i])[i].track_id for i in passing}
    with Store.open(both_stores["faiss"]) as store:  # FAISS returns neighbours whatever they are
        index = store.index(CROP_INDEX)
        assert not index.applies_filters and len(index.search(query, 1000, filters)[1][0]) == 1000


def test_a_writer_repairs_what_a_crash_left_in_milvus(tmp_path: Path) -> None:
    _build(tmp_path, "milvus")
    with Store.open(tmp_path, writable=True) as store:
        crops = store.index(CROP_INDEX)
        assert isinstance(crops, MilvusIndex) and crops.commit_seq == store.commit_seq
        lost = store.detection_ids()[:5]
        crops.remove(lost)  # vectors the database lost ...
        bogus = np.array([10_000], dtype=np.int64)  # ... and one of a chunk SQLite rolled back
        crops.add(bogus, normalise_rows(np.ones((1, DIM), dtype=np.float32)), store.vectors.fields_of(
            CROP_INDEX, store.detection_ids()[:1]))
        crops._record(store.commit_seq - 1)  # the crash came before the index recorded the last commit
    with Store.open(tmp_path) as reader:  # a reader searches as is and writes nothing
        problems = reader.integrity_problems()
        assert "crops: 1 vector ids point at no row" in problems and "crops: 5 rows have no vector" in problems
        assert search_store(reader, reader.detection_features(lost[:1])[1][0], top_k=3).hits
    with Store.open(tmp_path, writable=True) as store:  # the next writer repairs it from SQLite
        assert store.integrity_problems() == []
        scores, hits = store.index(CROP_INDEX).search(store.detection_features(lost)[1], 1)
        assert hits[:, 0].tolist() == lost.tolist()
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
        store.index(TRACK_INDEX)._record(store.commit_seq + 5)  # claims a commit SQLite never made: rebuilt
    with Store.open(tmp_path, writable=True) as store:
        assert store.index(TRACK_INDEX).count == len(store.track_ids()) and store.integrity_problems() == []


def test_a_store_keeps_the_backend_it_was_made_with(tmp_path: Path) -> None:
    _build(tmp_path / "m", "milvus")
    assert (tmp_path / "m" / "vectors" / EMBEDDED_NAME).exists()
    assert not list((tmp_path / "m" / "vectors").glob("*.faiss"))
    with pytest.raises(StoreError, match=r"keeps its vectors in the embedded Milvus database \(milvus\), not as "
                                         r"--index faiss; .* `reidkit store reindex-backend --db .* --to faiss`"):
        Store.open(tmp_path / "m", writable=True, index="faiss")
    _build(tmp_path / "f")
    with pytest.raises(StoreError, match=r"keeps its vectors in FAISS files \(faiss\), not as --index milvus"):
        Store.open(tmp_path / "f", index="milvus")
    with pytest.raises(StoreError, match=r"not as --index milvus --milvus-uri http://elsewhere:19530"):
        Store.open(tmp_path / "f", index="milvus", index_options={"uri": "http://elsewhere:19530"})
    with Store.open(tmp_path / "m", index="milvus") as store:  # the recorded choice, asked for again: fine
        assert store.location.backend == "milvus" and store.location.option("namespace").startswith("reidkit_")


def test_moving_a_store_between_backends_with_the_command(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _build(root)
    query = normalise_rows(np.random.default_rng(9).standard_normal((1, DIM)).astype(np.float32))[0]
    window = SearchFilters(cameras=("lobby",), after=START + timedelta(minutes=1))

    def answer() -> list[tuple[int, float]]:
        with Store.open(root) as store:
            return [(h.track.id, round(h.score, 5)) for h in search_store(store, query, 8, window).hits]

    before = answer()
    runner = CliRunner()
    moved = runner.invoke(app, ["store", "reindex-backend", "--db", str(root), "--to", "milvus"])
    assert moved.exit_code == 0, moved.output
    assert "from FAISS files (faiss) to the embedded Milvus database (milvus): 120 crops, 12 tracks" in moved.output
    assert not list((root / "vectors").glob("*.faiss"))  # the old index is gone once the new one serves
    assert answer() == before
    with Store.open(root) as store:
        namespace = store.location.option("namespace")
        assert store.location.backend == "milvus" and store.integrity_problems() == []
    again = runner.invoke(app, ["store", "reindex-backend", "--db", str(root), "--to", "milvus"])
    assert again.exit_code != 0 and "already keeps its vectors in the embedded Milvus database" in str(again.exception)

    # a move that crashed before its switch left collections behind: the next move deletes them
    with Store.open(root, writable=True) as store:
        leftover = IndexLocation("milvus", root / "vectors", {"namespace": "reidkit_crashed"})
        create_vector_index(leftover, CROP_INDEX, DIM, IndexPlan("flat"), None).close()
        with store.transaction():
            store.set_meta_values({PENDING_KEY: json.dumps(
                {"vector_index": "milvus", "milvus_uri": "", "milvus_namespace": "reidkit_crashed"})})
    back = runner.invoke(app, ["store", "reindex-backend", "--db", str(root), "--to", "faiss"])
    assert back.exit_code == 0, back.output
    assert sorted(p.name.split(".")[0] for p in (root / "vectors").glob("*.faiss")) == ["crops", "tracks"]
    assert answer() == before
    location = IndexLocation("milvus", root / "vectors")
    client = connect(location)
    assert [name for name in client.list_collections() if name.startswith((namespace, "reidkit_crashed"))] == []
    disconnect(client, location)


@pytest.mark.slow
def test_an_embedded_database_in_use_elsewhere_is_refused_in_one_line(tmp_path: Path) -> None:
    _build(tmp_path, "milvus")
    with Store.open(tmp_path, writable=True):  # an ingest holds the embedded database
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
        searched = subprocess.run(
            [sys.executable, "-m", "reidkit", "search", "--track", "1", "--db", str(tmp_path)],
            capture_output=True, text=True, env=env, timeout=120,
        )
    assert searched.returncode == 2
    assert searched.stderr.strip().count("\n") == 0, searched.stderr
    assert "another process has it open (milvus-lite serves one process at a time)" in searched.stderr
    assert "--milvus-uri http://HOST:19530" in searched.stderr
    # once this process has closed the store (not only once it exits), another process can open it
    opened = subprocess.run(
        [sys.executable, "-c", "import sys; from reidkit.store.reader import StoreReader; "
         "print(StoreReader.open(sys.argv[1]).index('crops').count)", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert opened.returncode == 0 and opened.stdout.strip() == "120", opened.stderr[-500:]


def test_ingest_refuses_another_backend_before_any_work(tmp_path: Path, vtest_video: Path) -> None:
    _build(tmp_path, "milvus")
    refused = CliRunner().invoke(app, ["ingest", str(vtest_video), "--camera", "x", "--db", str(tmp_path),
                                       "--index", "faiss"])
    assert refused.exit_code != 0 and "not as --index faiss" in str(refused.exception)
    bad_uri = CliRunner().invoke(app, ["ingest", str(vtest_video), "--camera", "x", "--db", str(tmp_path / "new"),
                                       "--index", "milvus", "--milvus-uri", "localhost:19530"])
    assert "is not a Milvus server address" in str(bad_uri.exception) and not (tmp_path / "new").exists()
