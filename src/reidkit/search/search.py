"""Person search: one query feature in, the tracks that most look like that person out, best first.

Candidates come from both indexes: the crop index (a single view that matches well) and the track index (a walk
whose pooled feature matches). Whatever index found them, candidates are scored exactly from SQLite's float32
features, so an approximate (IVF-PQ) index only has to get the right ids into the shortlist. Each track is one
result:

* ``score`` and ``best``: the track's crop closest to the query (cosine), among its crops inside the camera/time
  filters; results are ranked by it. On the demo video this ranks the true match higher than the pooled feature
  does (a walk's mean blurs the pose the query shows);
* ``track_score``: cosine with the track's quality-weighted mean feature, reported beside it.

Filters keep a track when at least one of its crops passes them. An index that can (Milvus) applies them inside the
vector search, so its shortlist holds only passing crops and tracks; FAISS returns the nearest crops whatever they
are, and the shortlist is deepened until enough pass. Either way every crop is checked against its SQLite row.
``--rerank`` re-orders the candidate tracks with k-reciprocal re-ranking (``reidkit.evaluation.rerank_features``)
over their pooled track features.

Options that could only give an empty answer (a camera the store never saw, ``--after`` later than ``--before``, a
score threshold that is not a number in [-1, 1]) are refused by ``check_search_options`` rather than answered with
nothing; a hit whose crop file is gone from the store is kept, with a note naming the file. Its messages name each
option as the caller knows it (``names``): the command line's flags (``CLI_OPTIONS``), or the HTTP API's fields.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from reidkit.errors import ConfigError, StoreError
from reidkit.search.hit_attributes import with_attributes
from reidkit.search.identity import identity_trajectory
from reidkit.search.people import memberships, unclustered_tracks
from reidkit.search.results import Hit, SearchResult
from reidkit.search.scoring import score_tracks
from reidkit.search.trajectory import build_trajectory
from reidkit.store.filters import SearchFilters
from reidkit.store.index_sync import CROP_INDEX, TRACK_INDEX
from reidkit.store.reader import StoreReader
from reidkit.store.rows import epoch_seconds

_MIN_SHORTLIST = 200
CLI_OPTIONS = {"top_k": "--top-k", "min_score": "--min-score", "after": "--after", "before": "--before",
               "camera": "--camera", "attributes": "--attr"}
FIELD_NAMES = {option: option for option in CLI_OPTIONS}  # the HTTP API's form fields


def check_search_options(
    store: StoreReader,
    filters: SearchFilters,
    top_k: int = 20,
    min_score: float = 0.0,
    names: dict[str, str] = CLI_OPTIONS,
) -> None:
    """Refuse, naming the option (as ``names`` calls it), what can only answer nothing: see the module docstring."""
    if top_k < 1:
        raise ConfigError(f"{names['top_k']} must be at least 1, got {top_k}")
    if not (math.isfinite(min_score) and -1.0 <= min_score <= 1.0):
        raise ConfigError(f"{names['min_score']} {min_score} must be a number from -1 to 1 (scores are cosine "
                          "similarities)")
    if filters.after is not None and filters.before is not None:
        if epoch_seconds(filters.after) > epoch_seconds(filters.before):
            raise ConfigError(
                f"{names['after']} {filters.after.isoformat()} is later than {names['before']} "
                f"{filters.before.isoformat()}: no time lies between them"
            )
    known = store.cameras()
    unknown = [name for name in filters.cameras if name not in known]
    if unknown:
        raise ConfigError(
            f"{names['camera']} {', '.join(map(repr, unknown))}: no such camera in store {store.root}; its cameras "
            f"are {', '.join(map(repr, known)) or 'none yet'}"
        )


def search_store(
    store: StoreReader,
    query: np.ndarray,
    top_k: int = 20,
    filters: SearchFilters = SearchFilters(),
    rerank: bool = False,
    exclude_track: int | None = None,
    min_score: float = 0.0,
    query_track: int | None = None,
    names: dict[str, str] = CLI_OPTIONS,
) -> SearchResult:
    """The ``top_k`` tracks closest to the L2-normalised ``query`` feature that pass ``filters``. ``query_track``:
    the stored track the query feature is (a ``--track`` search), whose person is the query's person.

    The trajectory is built from identities (``identity.identity_trajectory``) when the store has been clustered
    (``reidkit cluster --db``); else it is the hits scoring at least ``min_score``, in time order."""
    check_search_options(store, filters, top_k, min_score, names)
    crop_index, track_index = store.index(CROP_INDEX), store.index(TRACK_INDEX)
    if crop_index.count == 0:
        raise StoreError(f"store {store.root} holds no person crops yet; ingest a video with people in it first")
    query = np.asarray(query, dtype=np.float32).reshape(1, -1)
    if query.shape[1] != crop_index.dim:
        raise StoreError(f"query feature has {query.shape[1]} dims, the store holds {crop_index.dim}-d features")

    wanted = top_k + (1 if exclude_track is not None else 0)
    depth = max(_MIN_SHORTLIST, 20 * top_k)
    pushed = filters if filters.active else None  # an index that applies_filters returns only passing rows
    while True:
        crop_ids = crop_index.search(query, depth, pushed)[1][0]
        track_ids = track_index.search(query, max(depth // 4, wanted), pushed)[1][0]
        candidates = _candidates(store, crop_ids[crop_ids >= 0], track_ids[track_ids >= 0], filters, exclude_track)
        # Fewer passing crops than asked for: a filtering index has returned all there are.
        exhausted = depth >= crop_index.count or (crop_index.applies_filters and int((crop_ids >= 0).sum()) < depth)
        if len(candidates) >= 3 * wanted or exhausted:
            break
        depth *= 4  # filters removed most of the shortlist: look deeper

    scored = score_tracks(store, query[0], candidates, filters)
    scored.sort(key=lambda item: -item[1])
    notes = []
    if filters.after or filters.before:
        (untimed,) = store.db.execute("SELECT COUNT(*) FROM videos WHERE start_time IS NULL").fetchone()
        if untimed:
            notes.append(f"{untimed} video(s) ingested without --start-time cannot match --after/--before")
    reranked_distances: dict[int, float] = {}
    if rerank and len(scored) >= 2:
        reranked_distances = _rerank(store, query, [track_id for track_id, *_ in scored[: max(50, 3 * top_k)]])
        scored = [s for s in scored if s[0] in reranked_distances]
        scored.sort(key=lambda item: reranked_distances[item[0]])
    tracks = store.tracks(track_id for track_id, *_ in scored[:top_k])
    hits = [
        Hit(rank, tracks[track_id], score, track_score, best, reranked_distances.get(track_id))
        for rank, (track_id, score, track_score, best) in enumerate(scored[:top_k], start=1)
    ]
    notes += [
        f"crop file {hit.best.crop_path} of track {hit.track.id} is missing from store {store.root}"
        for hit in hits
        if not store.crop_file(hit.best).is_file()
    ]
    hits = with_attributes(store, with_people(store, hits))
    identity = identity_trajectory(store, query[0], hits, filters, query_track, exclude_track, min_score)
    if identity is not None:
        notes += identity.notes
        unplaced = unclustered_tracks(store)
        if unplaced:
            notes.append(f"{unplaced} track(s) ingested after the last `reidkit cluster --db` belong to no person yet")
    return SearchResult(
        hits=hits,
        trajectory=(
            build_trajectory([h for h in hits if h.score >= min_score]) if identity is None else identity.visits
        ),
        candidates=len(scored),
        reranked=bool(reranked_distances),
        notes=notes,
        person_id=None if identity is None else identity.person_id,
        identity=identity is not None,
    )


def with_people(store: StoreReader, hits: list[Hit]) -> list[Hit]:
    """The hits with the person each track belongs to (as the store's clustering placed it)."""
    placed = memberships(store, [hit.track.id for hit in hits])
    return [
        replace(hit, person_id=placed[hit.track.id].person_id, person_confidence=placed[hit.track.id].confidence)
        if hit.track.id in placed else hit
        for hit in hits
    ]


def track_query(store: StoreReader, track_id: int) -> np.ndarray:
    """The stored (normalised) feature of track ``track_id``, to search with an existing track."""
    ids, vectors = store.track_vectors(np.array([track_id], dtype=np.int64))
    if len(ids) == 0:
        raise StoreError(f"store {store.root} has no track {track_id}; take a track id from an earlier search")
    return vectors[0]


def _candidates(
    store: StoreReader,
    crop_ids: np.ndarray,
    track_ids: np.ndarray,
    filters: SearchFilters,
    exclude_track: int | None,
) -> set[int]:
    """Track ids behind the shortlisted crops and tracks (ids that resolve to no row are ignored)."""
    if filters.active:
        found = {row.track_id for row in store.detections(crop_ids).values() if filters.admits(row)}
    else:  # only the track ids are needed: no row objects for the whole shortlist
        found = store.tracks_of_detections(crop_ids)
    found |= set(store.tracks(track_ids))
    found.discard(exclude_track if exclude_track is not None else -1)
    return found


def _rerank(store: StoreReader, query: np.ndarray, track_ids: list[int]) -> dict[int, float]:
    """k-reciprocal re-ranked distances of the candidate tracks (k1, k2 shrink for short candidate lists)."""
    from reidkit.evaluation.rerank import rerank_features

    ids, gallery = store.track_vectors(np.array(track_ids, dtype=np.int64))
    k1 = max(1, min(20, len(ids) - 1))
    distances = rerank_features(query, gallery, metric="cosine", k1=k1, k2=max(1, min(6, k1)))
    return dict(zip(ids.tolist(), distances[0].astype(float).tolist()))
