"""The store on its own (no video, no model): SQLite + vector index round trips, crash repair, model guard, IVF path.

The store's search tests run on both vector indexes (``backend``: FAISS files and a real embedded milvus-lite
database); tests/test_search_milvus.py has the Milvus-only ones (push-down, crash repair, moving a store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from reidkit.errors import StoreError
from reidkit.store.faiss_index import FaissIndex
from reidkit.store.index_plan import IndexPlan, plan_index
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.layout import DB_NAME
from reidkit.store.paths import discard_on_failure
from reidkit.store.rows import NewDetection, normalise_rows
from reidkit.store.vector_index import IndexLocation, VectorIndex
from reidkit.store.writer import Store

DIM = 16
BACKENDS = ("faiss", "milvus")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "milvus":
        pytest.importorskip("milvus_lite", reason="the [milvus] extra is not installed")
    return str(request.param)


def _features(rng: np.random.Generator, count: int) -> np.ndarray:
    return normalise_rows(rng.standard_normal((count, DIM)).astype(np.float32))


def _new_store(root: Path, backend: str = "faiss") -> Store:
    store = Store.open(root, writable=True, create=True, index=backend)
    store.require_model("model-a", DIM, "imagenet")
    return store


def _add_video(store: Store, camera: str = "cam1", start: int = 0, end: int = 100) -> int:
    video = store.add_video(camera, "v.avi", "fp", start, end, 1, "hog", None, 10.0, 64, 48)
    return video.id


def _chunk(
    store: Store, rng: np.random.Generator, frames: range, tracks: list[int], video_id: int
) -> list[NewDetection]:
    """Detections of ``tracks`` in ``frames``, with (empty) crop files where ingest would have written them."""
    rows = []
    for frame in frames:
        for slot, key in enumerate(tracks):
            crop_path = f"crops/v{video_id:06d}/{frame:07d}_{slot:02d}.jpg"
            (store.root / crop_path).parent.mkdir(parents=True, exist_ok=True)
            (store.root / crop_path).touch()
            rows.append(
                NewDetection(key, frame, frame / 10, (1.0, 2.0, 11.0, 32.0), 0.9, 0.5 + 0.1 * slot, crop_path,
                             _features(rng, 1)[0])
            )
    return rows


def test_round_trip_tracks_pool_their_crops(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(0)
    with _new_store(tmp_path, backend) as store:
        video_id = _add_video(store)
        track_rows: dict[int, int] = {}
        first = _chunk(store, rng, range(0, 3), [7, 9], video_id)
        second = _chunk(store, rng, range(3, 5), [7], video_id)
        store.commit_chunk(video_id, first, 2, track_rows)
        store.commit_chunk(video_id, second, 4, track_rows)
        store.finish_video(video_id)
        store.save_indexes()
    with Store.open(tmp_path) as store:
        assert store.location.backend == backend  # recorded at creation, read back without asking
        assert store.integrity_problems() == []
        assert store.summary().detections == 8 and store.summary().tracks == 2
        assert store.video(video_id).status == "done" and store.video(video_id).last_committed_frame == 4
        # the track feature is the quality-weighted mean of its crops' features, re-normalised
        crops_of_7 = [d for d in first + second if d.track_key == 7]
        expected = normalise_rows(sum(d.feature * d.quality for d in crops_of_7))
        ids, vectors = store.track_vectors(np.array([track_rows[7]]))
        np.testing.assert_allclose(vectors[0], expected, atol=1e-5)
        assert store.tracks([track_rows[7]])[track_rows[7]].num_crops == 5
        # every crop finds itself first in the crop index, and vector ids are SQLite row ids
        scores, hits = store.index(CROP_INDEX).search(np.stack([d.feature for d in first]), 1)
        rows = store.detections(hits[:, 0])
        assert [rows[h].frame_index for h in hits[:, 0]] == [d.frame_index for d in first]
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_index_repairs_itself_after_a_crash_before_saving(tmp_path: Path, backend: str) -> None:
    """SQLite commits come first; an index that lags behind (or is lost) is brought in step on open."""
    rng = np.random.default_rng(1)
    with _new_store(tmp_path, backend) as store:
        video_id = _add_video(store)
        track_rows: dict[int, int] = {}
        store.commit_chunk(video_id, _chunk(store, rng, range(0, 2), [1, 2], video_id), 1, track_rows)
        store.save_indexes()
        # more crops for track 1 (changes its vector, keeps its id) and a new track, never saved: a "crash"
        store.commit_chunk(video_id, _chunk(store, rng, range(2, 4), [1, 3], video_id), 3, track_rows)
        # ... which also left crop files of an uncommitted chunk behind
        folder = store.crop_folder(video_id)
        (folder / "0000005_00.jpg").touch()
        (folder / ".0000004_01.jpg.tmp").touch()
        assert store.remove_orphan_crops(store.video(video_id)) == 2
        assert sorted(p.name for p in folder.iterdir())[-1] == "0000003_01.jpg"
    if backend == "faiss":
        assert len(sorted((tmp_path / "vectors").glob("tracks.seq*.faiss"))) == 1
    with Store.open(tmp_path, writable=True) as store:  # Milvus is repaired by a writer (a reader searches as is)
        assert store.index(TRACK_INDEX).commit_seq < store.commit_seq  # the crash left it behind
        assert store.integrity_problems() == []
        ids, vectors = store.track_vectors(store.track_ids())
        scores, hits = store.index(TRACK_INDEX).search(vectors, 1)
        assert hits[:, 0].tolist() == ids.tolist()
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)  # the updated vector, not the stale one
    if backend == "faiss":  # an unreadable index file is rebuilt from SQLite
        for path in (tmp_path / "vectors").iterdir():
            path.write_bytes(b"not a faiss index")
        with Store.open(tmp_path) as store:
            assert np.array_equal(np.sort(store.index(CROP_INDEX).ids()), store.detection_ids())


def test_deleted_rows_leave_no_dangling_vector_ids(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(2)
    with _new_store(tmp_path, backend) as store:
        keep, drop = _add_video(store, "a"), _add_video(store, "b", 100, 200)
        store.commit_chunk(keep, _chunk(store, rng, range(0, 2), [1], keep), 1, {})
        store.commit_chunk(drop, _chunk(store, rng, range(100, 102), [1], drop), 101, {})
        store.save_indexes()
    with Store.open(tmp_path, writable=True) as store:
        store.delete_video(drop)  # and no save: FAISS's files still hold the deleted ids (Milvus's never did)
    with Store.open(tmp_path) as store:
        assert store.index(CROP_INDEX).count == 2 == len(store.detection_ids())
        assert store.summary().cameras == 1
        assert store.integrity_problems() == []
        assert not store.crop_folder(drop).exists()


def test_a_store_holds_one_model(tmp_path: Path) -> None:
    with _new_store(tmp_path) as store:
        store.require_model("model-a", DIM, "imagenet")  # the same model again is fine
        with pytest.raises(StoreError, match=r"holds features of model model-a .* --checkpoint imagenet"):
            store.require_model("model-b", DIM, "/ckpt/b.pt")
        with pytest.raises(StoreError, match="model-a"):
            store.require_model("model-a", DIM * 2, "imagenet")


def test_missing_and_foreign_stores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"does not exist; build one with `reidkit ingest"):
        Store.open(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable reidkit store"):
        Store.open(tmp_path / "junk")


def test_one_writer_at_a_time(tmp_path: Path, backend: str) -> None:
    with _new_store(tmp_path, backend):
        with pytest.raises(StoreError, match="another `reidkit ingest` is writing"):
            Store.open(tmp_path, writable=True)
        with Store.open(tmp_path) as reader:  # searches still work meanwhile
            assert reader.summary().videos == 0


def test_a_failed_chunk_rolls_back_entirely(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(3)
    with _new_store(tmp_path, backend) as store:
        video_id = _add_video(store)
        track_rows: dict[int, int] = {}
        store.commit_chunk(video_id, _chunk(store, rng, range(0, 2), [1], video_id), 1, track_rows)
        store.db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON detections WHEN NEW.frame_index = 3 "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(sqlite3.IntegrityError):
            store.commit_chunk(video_id, _chunk(store, rng, range(2, 4), [1, 2], video_id), 3, track_rows)
        assert store.video(video_id).last_committed_frame == 1
        assert store.summary().detections == 2 and store.summary().tracks == 1
        assert set(track_rows) == {1}
        assert store.index(CROP_INDEX).count == 2  # the index never saw the failed chunk either


def test_faiss_ivf_index_supports_everything_the_store_needs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    vectors = _features(rng, 3000)
    ids = np.arange(10, 3010, dtype=np.int64)
    location = IndexLocation("faiss", tmp_path)
    index = FaissIndex.create(location, "crops", DIM, IndexPlan("ivf_pq", nlist=16, subquantizers=4), vectors)
    assert isinstance(index, VectorIndex) and index.kind == "ivf_pq"
    index.add(ids, vectors)
    assert index.remove(ids[:100]) == 100
    assert sorted(index.ids().tolist()) == ids[100:].tolist()
    index.save(commit_seq=5)
    loaded = FaissIndex.load(location, "crops", DIM)
    assert loaded is not None and loaded.commit_seq == 5 and loaded.count == 2900
    _, found = loaded.search(vectors[200:210], 10)
    # PQ scores are approximate (the store re-scores its shortlist exactly): each vector is in its own top 10
    assert (found == ids[200:210, None]).any(axis=1).mean() >= 0.9
    assert FaissIndex.load(location, "crops", DIM + 1) is None  # another dimension: rebuild, never mix


def test_index_plan_switches_from_exact_to_ivf_with_size() -> None:
    assert plan_index(1000, 2048).kind == "flat"
    big = plan_index(2_000_000, 2048)
    assert big.kind == "ivf_pq" and big.nlist >= 1024 and 2048 % big.subquantizers == 0


def test_a_failed_first_ingest_removes_only_the_store_it_made(tmp_path: Path) -> None:
    """``reidkit token create`` ran in the new folder while the first ingest into it was running, and the ingest
    then failed (an unreadable checkpoint): the store's own files go, the tokens and audit log stay. A folder that
    the run made and that is left empty goes too."""
    from reidkit.service.access import Role, create_token, list_tokens, verify

    root = tmp_path / "new-store"
    with pytest.raises(StoreError, match="unreadable checkpoint"):
        with discard_on_failure(root), Store.open(root, writable=True, create=True):
            secret = create_token(root, Role.admin, "made during the ingest")[1]
            raise StoreError("unreadable checkpoint")
    left = {p.name for p in root.iterdir()}
    assert "service.sqlite" in left and left <= {"service.sqlite", "service.sqlite-wal", "service.sqlite-shm"}
    assert [t.name for t in list_tokens(root)] == ["made during the ingest"] and verify(root, secret) is not None

    empty = tmp_path / "made-and-left-empty"
    with pytest.raises(StoreError), discard_on_failure(empty), Store.open(empty, writable=True, create=True):
        raise StoreError("unreadable checkpoint")
    assert not empty.exists()


def test_a_failed_first_ingest_into_a_folder_with_other_files_leaves_them(tmp_path: Path) -> None:
    """The folder already held the user's files, among them a folder named like the store's ``crops``."""
    root = tmp_path / "mine"
    (root / "crops").mkdir(parents=True)
    (root / "crops" / "holiday.jpg").write_bytes(b"the user's photo")
    (root / "notes.txt").write_text("the user's notes")
    with pytest.raises(StoreError), discard_on_failure(root), Store.open(root, writable=True, create=True) as store:
        store.require_model("model-a", DIM, "imagenet")
        raise StoreError("detector failed")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["crops", "crops/holiday.jpg", "notes.txt"]


def test_a_failure_after_the_first_video_keeps_the_store(tmp_path: Path) -> None:
    """A video row means resumable work: the store stays, to be resumed by the next ingest."""
    with pytest.raises(StoreError), discard_on_failure(tmp_path / "s"), _new_store(tmp_path / "s") as store:
        _add_video(store)
        raise StoreError("killed part-way")
    with Store.open(tmp_path / "s") as store:
        assert len(store.videos()) == 1
