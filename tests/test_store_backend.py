"""A vector index backend added as a newcomer would: one class (``ArrayIndex``, below) and one registry line.

``ArrayIndex`` keeps exact vectors in NumPy arrays saved as ``<folder>/<prefix><name>.npz``; it filters by camera and
time itself (``applies_filters``, so the store hands it each row's ``VectorFields``), takes one option (``prefix``,
spelled ``--arrays-prefix``) and is found again on open by the commit it recorded. The tests run every store
operation on it, with nothing else in reidkit changed: create and record the backend, commit chunks, save, reopen
(writer and reader), filtered search agreeing with FAISS, crash repair, a live reader's refresh, deleting a
video, refusing another backend or a bad option, ``reidkit list indexes``, and moving a store to FAISS and back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reidkit.cli.main import app
from reidkit.errors import ConfigError, StoreError
from reidkit.registry import Registry
from reidkit.search.search import search_store
from reidkit.store import vector_index
from reidkit.store.backend_move import move_store
from reidkit.store.filters import SearchFilters, VectorFields
from reidkit.store.index_plan import IndexPlan, plan_index
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.reader import StoreReader
from reidkit.store.rows import NewDetection, normalise_rows
from reidkit.store.vector_index import IndexLocation, VectorIndex
from reidkit.store.writer import Store

DIM = 16
START = datetime(2024, 5, 1, 9, 0, 0)
CAMERAS = ("lobby", "door", "yard")  # the yard's video has no start time: it fails every time filter


class ArrayIndex:
    """An exact index in NumPy arrays: the whole of a backend, ``IndexBackend`` (the class) and ``VectorIndex``."""

    writes_through = False
    option_names = ("prefix",)

    def __init__(self, path: Path, dim: int, kind: str, commit_seq: int, arrays: Mapping[str, np.ndarray]) -> None:
        self.path, self._dim, self._kind, self._commit_seq = path, dim, kind, commit_seq
        self._ids, self._vectors = arrays["ids"], arrays["vectors"]
        self._cameras, self._first, self._last = arrays["cameras"], arrays["first"], arrays["last"]

    # --- IndexBackend ---------------------------------------------------------------------------------------------
    @staticmethod
    def check_options(options: Mapping[str, str]) -> None:
        prefix = options.get("prefix", "")
        if prefix and not prefix.isalnum():
            raise ConfigError(f"--arrays-prefix {prefix!r} must be letters and digits")

    @staticmethod
    def new_location(folder: Path, options: Mapping[str, str]) -> IndexLocation:
        return IndexLocation("arrays", folder, dict(options))

    @staticmethod
    def describe(location: IndexLocation) -> str:
        return f"NumPy arrays named {location.option('prefix')!r} (arrays)"

    @classmethod
    def create(
        cls, location: IndexLocation, name: str, dim: int, plan: IndexPlan, training: np.ndarray | None
    ) -> ArrayIndex:
        empty = {"ids": np.zeros(0, np.int64), "vectors": np.zeros((0, dim), np.float32),
                 "cameras": np.zeros(0, str), "first": np.zeros(0), "last": np.zeros(0)}
        return cls(_file(location, name), dim, plan.kind, -1, empty)

    @classmethod
    def load(cls, location: IndexLocation, name: str, dim: int) -> ArrayIndex | None:
        path = _file(location, name)
        if not path.is_file():
            return None
        with np.load(path) as saved:
            if saved["vectors"].shape[1] != dim:
                return None
            return cls(path, dim, str(saved["kind"]), int(saved["commit_seq"]), dict(saved))

    @staticmethod
    def discard(location: IndexLocation, name: str) -> None:
        _file(location, name).unlink(missing_ok=True)

    # --- VectorIndex ----------------------------------------------------------------------------------------------
    dim = property(lambda self: self._dim)
    kind = property(lambda self: self._kind)
    count = property(lambda self: len(self._ids))
    commit_seq = property(lambda self: self._commit_seq)
    applies_filters = True

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: VectorFields | None = None) -> None:
        assert fields is not None and len(fields) == len(ids), "a filtering index gets every row's fields"
        self._ids = np.concatenate([self._ids, ids.astype(np.int64)])
        self._vectors = np.vstack([self._vectors, np.asarray(vectors, np.float32).reshape(len(ids), self._dim)])
        self._cameras = np.concatenate([self._cameras, fields.cameras.astype(str)])
        self._first = np.concatenate([self._first, fields.first_epoch])
        self._last = np.concatenate([self._last, fields.last_epoch])

    def remove(self, ids: np.ndarray) -> int:
        keep = ~np.isin(self._ids, ids)
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        self._cameras, self._first, self._last = self._cameras[keep], self._first[keep], self._last[keep]
        return int((~keep).sum())

    def search(
        self, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(vectors, np.float32).reshape(-1, self._dim) @ self._vectors.T
        passing = np.ones(len(self._ids), bool)
        if filters is not None and filters.cameras:
            passing &= np.isin(self._cameras, filters.cameras)
        if filters is not None and filters.after_epoch is not None:
            passing &= self._last >= filters.after_epoch - 1e-3  # NaN (no start time) fails, as in admits
        if filters is not None and filters.before_epoch is not None:
            passing &= self._first <= filters.before_epoch + 1e-3
        scores[:, ~passing] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(scores, order, axis=1)
        found = np.where(np.isfinite(best), self._ids[order], -1)
        padding = k - order.shape[1]
        return (np.pad(np.where(np.isfinite(best), best, 0), ((0, 0), (0, padding))).astype(np.float32),
                np.pad(found, ((0, 0), (0, padding)), constant_values=-1))

    def ids(self) -> np.ndarray:
        return np.sort(self._ids)

    def save(self, commit_seq: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.stem}.tmp.npz")
        np.savez(temporary, ids=self._ids, vectors=self._vectors, cameras=self._cameras, first=self._first,
                 last=self._last, kind=np.array(self._kind), commit_seq=np.array(commit_seq))
        os.replace(temporary, self.path)
        self._commit_seq = commit_seq

    def outgrown(self, count: int) -> bool:
        return plan_index(count, self._dim).kind != self._kind

    def close(self) -> None:
        """Nothing to let go of."""


def _file(location: IndexLocation, name: str) -> Path:
    return location.folder / f"{location.option('prefix')}{name}.npz"


@pytest.fixture(autouse=True)
def arrays_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with the new backend, for these tests only (the real one is left as it is)."""
    registry: Registry[str] = Registry("vector index", StoreError)
    for entry in vector_index.VECTOR_INDEXES.entries():
        registry.add(entry.name, entry.target, entry.summary)
    registry.add("arrays", f"{__name__}.ArrayIndex", "exact NumPy arrays in .npz files (a test backend)")
    monkeypatch.setattr(vector_index, "VECTOR_INDEXES", registry)


def _commit_video(store: Store, number: int, rng: np.random.Generator, frames: range) -> int:
    camera = CAMERAS[number % len(CAMERAS)]
    start = None if camera == "yard" else START + timedelta(minutes=10 * number)
    video = store.add_video(camera, f"v{number}.avi", f"fp{number}", 0, 1000, 1, "hog", start, 1.0, 64, 48)
    _commit_frames(store, video.id, rng, frames)
    return video.id


def _commit_frames(store: Store, video_id: int, rng: np.random.Generator, frames: range) -> None:
    rows = []
    for frame in frames:
        for slot in range(3):
            crop = f"crops/v{video_id:06d}/{frame:07d}_{slot:02d}.jpg"
            (store.root / crop).parent.mkdir(parents=True, exist_ok=True)
            (store.root / crop).touch()
            feature = normalise_rows(rng.standard_normal((1, DIM)).astype(np.float32))[0]
            rows.append(NewDetection(slot, frame * 30, frame * 30.0, (1, 2, 11, 32), 0.9, 0.6, crop, feature))
    store.commit_chunk(video_id, rows, frames[-1] * 30, {})


def _build(root: Path, backend: str, options: Mapping[str, str] | None = None) -> None:
    rng = np.random.default_rng(0)
    with Store.open(root, writable=True, create=True, index=backend, index_options=options) as store:
        store.require_model("model-a", DIM, "imagenet")
        for number in range(3):
            _commit_video(store, number, rng, range(8))
        store.save_indexes()


def _answers(root: Path) -> list[list[tuple[int, float]]]:
    queries = normalise_rows(np.random.default_rng(9).standard_normal((3, DIM)).astype(np.float32))
    filters = [SearchFilters(), SearchFilters(cameras=("door", "yard")),
               SearchFilters(after=START + timedelta(minutes=12)),
               SearchFilters(cameras=("lobby",), before=START + timedelta(minutes=2))]
    with StoreReader.open(root) as store:
        return [[(hit.track.id, round(hit.score, 5)) for hit in search_store(store, query, 5, chosen).hits]
                for chosen in filters for query in queries]


def test_a_new_backend_serves_every_store_operation(tmp_path: Path) -> None:
    _build(tmp_path / "faiss", "faiss")
    root = tmp_path / "arrays"
    _build(root, "arrays", {"prefix": "idx"})
    assert sorted(p.name for p in (root / "vectors").iterdir()) == ["idxcrops.npz", "idxtracks.npz"]
    assert _answers(root) == _answers(tmp_path / "faiss")  # filtered inside the index, the same hits as FAISS
    with StoreReader.open(root) as store:
        assert store.location == IndexLocation("arrays", root / "vectors", {"prefix": "idx"})
        assert isinstance(store.index(CROP_INDEX), VectorIndex) and store.integrity_problems() == []

    with Store.open(root, writable=True) as store:  # a crash after a commit, before the index was saved
        _commit_frames(store, 1, np.random.default_rng(1), range(8, 12))
        seen = store.commit_seq
    with StoreReader.open(root) as reader, Store.open(root, writable=True) as writer:
        assert reader.integrity_problems() == []  # repaired in the reader's memory from SQLite
        assert writer.index(CROP_INDEX).count == reader.index(CROP_INDEX).count == len(reader.detection_ids())
        _commit_frames(writer, 2, np.random.default_rng(2), range(8, 10))  # a live reader takes in new commits
        reader.vectors.refresh(seen)
        assert reader.index(CROP_INDEX).count == len(writer.detection_ids())
        writer.delete_video(1)
        writer.save_indexes()
        assert writer.integrity_problems() == [] and writer.index(TRACK_INDEX).count == len(writer.track_ids())


def test_a_new_backend_is_recorded_checked_listed_and_moved(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _build(root, "arrays", {"prefix": "a1"})
    with pytest.raises(StoreError, match=r"keeps its vectors in NumPy arrays named 'a1' \(arrays\), not as "
                                         r"--index arrays --arrays-prefix b2; .* --to arrays`"):
        Store.open(root, index="arrays", index_options={"prefix": "b2"})
    with pytest.raises(ConfigError, match="--arrays-prefix 'a/b' must be letters and digits"):
        Store.open(tmp_path / "new", writable=True, create=True, index="arrays", index_options={"prefix": "a/b"})
    with pytest.raises(ConfigError, match=r"the arrays vector index takes no --arrays-uri \(its options: "
                                          r"--arrays-prefix\)"):
        Store.open(tmp_path / "new", writable=True, create=True, index="arrays", index_options={"uri": "x"})
    listed = CliRunner().invoke(app, ["list", "indexes"])
    assert listed.exit_code == 0 and "arrays  exact NumPy arrays in .npz files" in listed.output

    before = _answers(root)
    with Store.open(root, writable=True) as store:
        report = move_store(store, "faiss")
    assert (report.source, report.target) == ("NumPy arrays named 'a1' (arrays)", "FAISS files (faiss)")
    assert not list((root / "vectors").glob("*.npz")) and _answers(root) == before
    with Store.open(root, writable=True) as store:
        move_store(store, "arrays", {"prefix": "c3"})
    assert sorted(p.name for p in (root / "vectors").iterdir()) == ["c3crops.npz", "c3tracks.npz"]
    assert _answers(root) == before
