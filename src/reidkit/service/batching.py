"""Micro-batching of query embeddings: concurrent searches share one forward pass, then one trip to the store.

One query crop costs the ReID network a whole forward pass, a good part of it fixed overhead (layer dispatch,
threads waking up) rather than arithmetic, so N crops in one batch cost clearly less than N passes (OpenVINO on the
2-core machine: 7.7 ms of CPU per crop in batches of 20, 12.6 ms alone), and N requests wait for one pass instead of
queueing for N. Under load the server therefore never runs passes side by side (each already uses every core) nor
one per request: each request puts its crop in a queue and waits for its future; one worker thread takes
everything waiting (up to ``max_batch`` crops), runs ONE pass, and hands each caller its row. A crop that arrives
alone waits at most ``gather_s`` for company, which costs a lone user a couple of milliseconds and lets requests
that arrive together share a pass. While a pass runs the next requests queue up, so a busy server batches without
waiting at all.

What a caller does with its row can travel with the crop (``then``): the batch's continuations are handed off
together, in one call, to another thread (``hand_off``: the server's store thread, where searches run), and the
worker goes straight on with the next pass. Without that, a pass released N requests at once and each queued on
its own for the store thread, behind the others' searches and every other use of the store (under the load
benchmark that queueing was a third of a search's latency, benchmarks/RESULTS.md).

The features do not depend on the batch: the network runs in eval mode (batch norm uses its running statistics;
no layer looks across the batch), so a crop gets the same row alone or with others (tests hold this to 1e-5).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]
C = TypeVar("C")  # what the hand-off thread gives each continuation (the server's store)
T = TypeVar("T")
# ``hand_off(job)`` runs ``job(context)`` on another thread, soon, and returns the Future of that run.
HandOff = Callable[[Callable[[C], None]], "Future[None]"]


@dataclass
class _Item:
    embed: Embed
    crop: np.ndarray
    then: Callable[[Any, np.ndarray], Any] | None = None
    future: Future[Any] = field(default_factory=Future)


class Batcher(Generic[C]):
    """``embed(fn, crop)`` returns ``fn([crop, ...])``'s row for ``crop``, computed in a batch with whatever other
    crops were waiting for the same ``fn``; ``embed(fn, crop, then)`` returns ``then(context, row)``, run through
    ``hand_off`` with the rest of the batch's continuations. ``forward_passes``, ``crops`` and ``hand_offs`` count
    what the worker ran (the tests read them to see that it batched)."""

    def __init__(self, max_batch: int = 32, gather_s: float = 0.002, hand_off: HandOff[C] | None = None) -> None:
        self.max_batch, self.gather_s, self.hand_off = max_batch, gather_s, hand_off
        self.forward_passes = 0
        self.crops = 0
        self.hand_offs = 0
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def embed(self, fn: Embed, crop: np.ndarray, then: Callable[[C, np.ndarray], T] | None = None) -> Any:
        if then is not None and self.hand_off is None:
            raise ValueError("a continuation needs a Batcher made with hand_off")
        with self._start:  # started on first use: an app that never embeds keeps no thread
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="reidkit-embed", daemon=True)
                self._worker.start()
        item = _Item(fn, crop, then)
        self._queue.put(item)
        return item.future.result()

    def _work(self) -> None:
        while True:
            batch = self._gather()
            for fn in {id(item.embed): item.embed for item in batch}.values():
                self._run(fn, [item for item in batch if item.embed is fn])

    def _gather(self) -> list[_Item]:
        """Everything waiting, up to ``max_batch``; a lone crop waits up to ``gather_s`` for a second one."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.gather_s
        while len(batch) < self.max_batch:
            wait = deadline - time.monotonic() if len(batch) == 1 else 0.0
            try:
                batch.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self, fn: Embed, items: list[_Item]) -> None:
        try:
            rows = fn([item.crop for item in items])
            self.forward_passes += 1
            self.crops += len(items)
        except BaseException as exc:  # handed to the callers (their requests report it); the worker lives on
            if len(items) > 1:  # one bad crop must not fail the others: run each alone to find it
                for item in items:
                    self._run(fn, [item])
            else:
                items[0].future.set_exception(exc)
            return
        chained = []
        for item, row in zip(items, rows, strict=True):
            if item.then is None:
                item.future.set_result(row)
            else:
                chained.append((item, row))
        if chained:
            self._hand_off(chained)

    def _hand_off(self, chained: list[tuple[_Item, np.ndarray]]) -> None:
        """One call on the hand-off thread runs every continuation of the pass, each caller getting its own result
        or exception; should the call itself fail (the store cannot be opened), every caller gets that error."""

        def job(context: Any) -> None:
            for item, row in chained:
                try:
                    item.future.set_result(item.then(context, row))  # type: ignore[misc]
                except BaseException as exc:
                    item.future.set_exception(exc)

        def failed(done: Future[None]) -> None:
            error = RuntimeError("the store thread has stopped") if done.cancelled() else done.exception()
            if error is not None:
                fail(error)

        def fail(error: BaseException) -> None:
            for item, _ in chained:
                if not item.future.done():
                    item.future.set_exception(error)

        assert self.hand_off is not None
        self.hand_offs += 1
        try:
            self.hand_off(job).add_done_callback(failed)
        except BaseException as exc:  # the thread could not take it (shut down): the callers hear why
            fail(exc)
