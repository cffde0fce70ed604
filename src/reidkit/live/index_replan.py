"""Re-planning a live store's vector index off the worker thread.

A recording's ingest re-plans an outgrown index (exact -> IVF-PQ, ``store.index_plan``) when it saves; a live
watcher must not, since training IVF-PQ on thousands of 2048-d vectors takes tens of seconds on two cores and every
camera's queue would overflow meanwhile (measured: benchmarks/RESULTS.md, "Four live cameras on two cores").
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from reidkit.store.reader import StoreReader
from reidkit.store.writer import Store

log = logging.getLogger(__name__)
_NICE = 10


class IndexReplanner:
    """Re-plans a vector index that the growing gallery outgrew in a thread of its own: the thread builds the new
    index from its own read-only view of the store (FAISS releases the GIL while it trains); the worker adopts it at
    a later ``tick``, with the rows committed meanwhile, and keeps serving and saving the old index until then. An
    index whose writes go straight to a shared database (Milvus) is left as it is while the watcher runs."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.thread: threading.Thread | None = None
        self.built: dict[str, tuple[Any, int]] = {}
        self.error: BaseException | None = None

    def tick(self) -> None:
        """Adopt what a finished thread built; start one for any index outgrown now."""
        if self.thread is not None:
            if self.thread.is_alive():
                return
            self._adopt()
        names = [name for name in self.store.vectors.outgrown() if not self.store.vectors.get(name).writes_through]
        if names:
            self.thread = threading.Thread(target=self._rebuild, args=(names,), name="reidkit-replan", daemon=True)
            self.thread.start()

    def close(self, timeout_s: float = 120.0) -> None:
        """Wait for a rebuild under way and adopt it, so that the watcher saves the re-planned index when it stops
        and a restarted watcher does not train the same index again."""
        if self.thread is not None:
            self.thread.join(timeout_s)
            if not self.thread.is_alive():
                self._adopt()

    def _adopt(self) -> None:
        self.thread = None
        if self.error is not None:
            log.warning("re-planning the vector index failed (kept the old one): %s", self.error)
            self.error = None
        for name, (index, built_at) in self.built.items():
            self.store.vectors.adopt(name, index, built_at)
        self.built = {}

    def _rebuild(self, names: list[str]) -> None:
        try:
            # the cameras come first: on Linux a thread has a nice value of its own, and FAISS's training threads
            # inherit it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
            with StoreReader.open(self.store.root) as reader:
                built_at, model = reader.commit_seq, reader.model
                assert model is not None  # an index exists, so the store knows its model
                self.built = {name: (reader.vectors.rebuild(name, model.feature_dim, reader.location), built_at)
                              for name in names}
        except Exception as error:  # noqa: BLE001  (reported by tick, in the worker)
            self.error = error
