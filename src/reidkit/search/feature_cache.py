"""Each track's crop features kept in memory between searches, for a process that searches one store many times.

A search scores every crop of its candidate tracks from their exact stored features (``scoring.score_tracks``).
Read from SQLite per search, those features were the largest cost of the server's store thread, through which all
of its searches pass in turn (benchmarks/RESULTS.md, "Service under load"). The server therefore switches a cache
on for the store it keeps open (``keep_track_features``); one-off searches (the CLI) read SQLite as before.

The cache belongs to one open store and is emptied whenever the store's ``commit_seq`` moves: every change of
rows or features (an ingest chunk, a delete, a purge, a reindex) commits a new sequence number, so the cache never
serves features of rows that changed. It holds at most ``max_crops`` crops, dropping the least recently used tracks
first (2048-d features: 50,000 crops are 400 MB).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

from reidkit.store.reader import StoreReader

DEFAULT_MAX_CROPS = 50_000


class TrackFeatureCache:
    """``scores(store, track_ids, query)`` answers what ``StoreReader.track_detection_features`` and a product with
    the query would, from memory where it can. Tracks with no stored crop are remembered as empty, so they cost no
    second read either."""

    def __init__(self, max_crops: int = DEFAULT_MAX_CROPS) -> None:
        self.max_crops = max_crops
        self._tracks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()  # track -> (det ids, rows)
        self._crops = 0
        self._seq: int | None = None

    def scores(
        self, store: StoreReader, track_ids: np.ndarray, query: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(detection ids, their track ids, feature . query)`` of every crop of ``track_ids``: each track's rows
        are scored where they lie, never copied into one matrix first (for a few thousand crops that copy cost
        more than the products)."""
        seq = store.commit_seq
        if seq != self._seq:
            self._tracks.clear()
            self._crops, self._seq = 0, seq
        wanted = [int(t) for t in dict.fromkeys(np.asarray(track_ids, dtype=np.int64).tolist())]
        missing = [t for t in wanted if t not in self._tracks]
        if missing:
            det_ids, owners, rows = store.track_detection_features(missing)
            for track in missing:
                mine = owners == track
                self._tracks[track] = (det_ids[mine], rows[mine])
                self._crops += int(mine.sum())
        parts = [self._tracks[t] for t in wanted]
        for track in wanted:
            self._tracks.move_to_end(track)
        while self._crops > self.max_crops and len(self._tracks) > len(wanted):
            _, (dropped, _) = self._tracks.popitem(last=False)
            self._crops -= len(dropped)
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        det_ids = np.concatenate([p[0] for p in parts])
        owners = np.repeat(np.array(wanted, dtype=np.int64), [len(p[0]) for p in parts])
        return det_ids, owners, np.concatenate([rows @ query for _, rows in parts])


_CACHES: weakref.WeakKeyDictionary[StoreReader, TrackFeatureCache] = weakref.WeakKeyDictionary()


def keep_track_features(store: StoreReader, max_crops: int = DEFAULT_MAX_CROPS) -> None:
    """Serve ``track_crop_scores(store, ...)`` from a ``TrackFeatureCache`` for as long as ``store`` is open."""
    _CACHES[store] = TrackFeatureCache(max_crops)


def track_crop_scores(
    store: StoreReader, track_ids: np.ndarray, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(detection ids, their track ids, feature . query)`` of every crop of the given tracks: from the store's
    cache when ``keep_track_features`` switched one on, else from SQLite."""
    cache = _CACHES.get(store)
    if cache is not None:
        return cache.scores(store, track_ids, query)
    det_ids, owners, rows = store.track_detection_features(track_ids)
    return det_ids, owners, rows @ query
