"""The server's in-memory track features: the same answer as SQLite, emptied by every commit, bounded in size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_search_store import _add_video, _chunk, _new_store  # tests/ is on sys.path (rootdir conftest)

from reidkit.search.feature_cache import TrackFeatureCache, keep_track_features, track_crop_scores
from reidkit.search.scoring import score_tracks
from reidkit.store.filters import SearchFilters


def _sorted(answer: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(answer[0])
    return answer[0][order], answer[1][order], answer[2][order]


def test_cache_answers_what_sqlite_answers_and_forgets_on_commit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with _new_store(tmp_path) as store:
        video = _add_video(store)
        track_rows: dict[int, int] = {}
        store.commit_chunk(video, _chunk(store, rng, range(0, 4), [1, 2, 3], video), 3, track_rows)
        tracks = store.track_ids()
        query = store.detection_features(store.detection_ids()[:1])[1][0]
        cache = TrackFeatureCache()
        for ids in (tracks, tracks[:2], tracks[::-1], np.array([tracks[0], 999_999])):
            det_ids, owners, rows = store.track_detection_features(ids)
            want, got = _sorted((det_ids, owners, rows @ query)), _sorted(cache.scores(store, ids, query))
            for a, b in zip(want, got):
                np.testing.assert_allclose(a, b, rtol=1e-6)
        assert cache.scores(store, np.array([999_999]), query)[0].size == 0
        # a commit that changes rows must not be answered from memory
        store.commit_chunk(video, _chunk(store, rng, range(4, 6), [1], video), 5, track_rows)
        assert len(cache.scores(store, tracks, query)[0]) == len(store.track_detection_features(tracks)[0]) == 14

        plain = score_tracks(store, query, set(tracks.tolist()), SearchFilters())
        keep_track_features(store)
        cached = score_tracks(store, query, set(tracks.tolist()), SearchFilters())
        assert [(t, s, b.id) for t, s, _, b in plain] == [(t, s, b.id) for t, s, _, b in cached]
        assert len(track_crop_scores(store, tracks, query)[0]) == 14


def test_cache_drops_least_recently_used_tracks_beyond_its_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with _new_store(tmp_path) as store:
        video = _add_video(store)
        store.commit_chunk(video, _chunk(store, rng, range(0, 5), [1, 2, 3], video), 4, {})
        a, b, c = store.track_ids().tolist()
        cache = TrackFeatureCache(max_crops=10)  # two tracks of 5 crops
        query = np.ones(store.detection_features(store.detection_ids()[:1])[1].shape[1], dtype=np.float32)
        cache.scores(store, np.array([a, b]), query)
        cache.scores(store, np.array([c]), query)  # a, least recently used, goes
        assert list(cache._tracks) == [b, c] and cache._crops == 10
        assert len(cache.scores(store, np.array([a, b, c]), query)[0]) == 15  # one answer may exceed the bound
