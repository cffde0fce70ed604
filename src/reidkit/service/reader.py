"""The server's view of the store: one ``StoreReader`` kept open on one thread, brought up to date when another
process (an ingest job, ``reidkit ingest``) commits.

Opening a store per request would reload both vector indexes from disk (hundreds of MB for a large store) and replay
every row committed since they were last saved. Instead one store stays open and, before each use, its
``commit_seq`` (one indexed SQLite read) is compared with the last one seen; when it moved, ``StoreVectors.refresh``
adds the new rows and drops deleted ones. Python's sqlite3 connections belong to the thread that made them and FAISS
indexes must not be searched while rows are added, so every use of the store runs on one dedicated thread, in turn:
``StoreThread.call(fn)`` runs ``fn(store)`` there. Searches are short (milliseconds); the model, the slow part, runs
outside it.

The store's crop features are kept in memory between commits (``reidkit.search.feature_cache``): each search
scores every crop of its candidate tracks, and reading them from SQLite each time was most of this thread's work.

FAISS searches on that thread use one OpenMP thread: a query is one vector, which FAISS's threads cannot share
out, yet every search woke them (24 ms per search with two threads on a busy 2-core machine, 3 ms with one) and
they spun beside the model's forward passes (a fifth of the server's CPU under the load benchmark,
benchmarks/RESULTS.md). ``omp_set_num_threads`` sets the calling thread's own OpenMP setting, so it is set here, on
the thread that searches (set on the thread that started the server, it never reached this one), and ingest and
index builds elsewhere keep their threads.

A store folder with no store yet (a server started before the first ingest) reads as empty until one appears.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from reidkit.search.feature_cache import keep_track_features
from reidkit.store.layout import DB_NAME
from reidkit.store.reader import StoreReader

T = TypeVar("T")


class StoreThread:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._store: StoreReader | None = None
        self._seen = -1
        self._thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="reidkit-store", initializer=_one_faiss_thread
        )

    def call(self, fn: Callable[[StoreReader | None], T]) -> T:
        """``fn(store)`` on the store's thread, with the store as of the latest commit (None: no store yet)."""
        return self.post(fn).result()

    def post(self, fn: Callable[[StoreReader | None], T]) -> Future[T]:
        """``call`` without waiting: ``fn(store)`` is queued for the store's thread and its Future returned."""
        return self._thread.submit(self._run, fn)

    def close(self) -> None:
        self._thread.submit(self._close).result()
        self._thread.shutdown()

    def _run(self, fn: Callable[[StoreReader | None], T]) -> T:
        return fn(self._current())

    def _current(self) -> StoreReader | None:
        if self._store is None:
            if not (self.root / DB_NAME).is_file():
                return None
            self._store = StoreReader.open(self.root)
            keep_track_features(self._store)
            self._seen = self._store.commit_seq
            return self._store
        seq = self._store.commit_seq
        if seq != self._seen:
            self._store.vectors.refresh(self._seen)
            self._seen = seq
        return self._store

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _one_faiss_thread() -> None:
    import faiss

    faiss.omp_set_num_threads(1)
