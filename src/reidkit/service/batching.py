"""Micro-batching of query embeddings: concurrent searches share one forward pass.

One query crop costs the ReID network a whole forward pass, a good part of it fixed overhead (layer dispatch,
threads waking up) rather than arithmetic, so N crops in one batch cost clearly less than N passes (OpenVINO on the
2-core machine: 7.7 ms of CPU per crop in batches of 20, 12.6 ms alone), and N requests wait for one pass instead of
queueing for N. Under load the server therefore never runs passes side by side (each already uses every core) nor
one per request: each request puts its crop in a queue and waits for its future; one worker thread takes
everything waiting (up to ``max_batch`` crops), runs ONE pass, and hands each caller its row. A crop that arrives
alone waits at most ``gather_s`` for company, which costs a lone user a couple of milliseconds and lets requests
that arrive together share a pass. While a pass runs the next requests queue up, so a busy server batches without
waiting at all.

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

import numpy as np

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class _Item:
    embed: Embed
    crop: np.ndarray
    future: Future[np.ndarray] = field(default_factory=Future)


class Batcher:
    """``embed(fn, crop)`` returns ``fn([crop, ...])``'s row for ``crop``, computed in a batch with whatever other
    crops were waiting for the same ``fn``. ``forward_passes`` and ``crops`` count what the worker ran (the tests
    read them to see that it batched)."""

    def __init__(self, max_batch: int = 32, gather_s: float = 0.002) -> None:
        self.max_batch, self.gather_s = max_batch, gather_s
        self.forward_passes = 0
        self.crops = 0
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def embed(self, fn: Embed, crop: np.ndarray) -> np.ndarray:
        with self._start:  # started on first use: an app that never embeds keeps no thread
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="reidkit-embed", daemon=True)
                self._worker.start()
        item = _Item(fn, crop)
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
        for item, row in zip(items, rows, strict=True):
            item.future.set_result(row)
