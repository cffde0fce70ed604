"""``reidkit cluster --db``: group every track of a store (all cameras) into people, and store who is who.

What the footage tells for free goes in as constraints, not as tuning:

* a track is one person (its crops are must-linked by clustering the track, through its quality-weighted mean
  feature, as one item);
* two tracks of one video that overlap in time are two people (cannot-link);
* each camera's features are centred on their own mean before clustering (the core's camera normalisation:
  lighting and viewpoint shift a whole camera's features alike).

No parameter is fitted to this store's people: the core's radius is its default (fitted on a benchmark's training
identities) or derived from the features; the rest comes from the store's own data (the cannot-link pairs' similarity
distributions, ``evidence.DifferentPeople``: of hit scores, for the hit threshold of identity trajectories; of
camera-normalised track features, for membership confidences) and saved with the result, with the model id, in one
transaction (``people.save_people``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reidkit.clustering import UNCLUSTERED, ClusterOptions, camera_normalise, cluster_features
from reidkit.clustering.constraints import split_conflicts
from reidkit.errors import StoreError
from reidkit.search.evidence import DifferentPeople
from reidkit.search.people import Clustering, save_people
from reidkit.store.writer import Store

# Pairs whose score distribution is measured: plenty for 101 percentiles, bounded for a store of a million tracks.
MAX_EVIDENCE_PAIRS = 20_000
_PAIRS_PER_READ = 256


@dataclass(frozen=True)
class StoreTracks:
    """The store's tracks as clustering input: ``ids[i]`` has ``features[i]`` (L2-normalised) and ``cameras[i]``;
    ``cannot_link`` holds index pairs ``(i, j)``, i < j, of tracks of one video that overlap in time."""

    ids: np.ndarray
    features: np.ndarray
    cameras: list[str]
    cannot_link: np.ndarray


@dataclass(frozen=True)
class GroupingReport:
    clustering: Clustering
    tracks: int
    people: int
    people_seen_twice: int  # people with more than one track
    cross_camera: int  # people seen by more than one camera
    cannot_link_pairs: int
    seconds: float


def store_tracks(store: Store) -> StoreTracks:
    ids, features = store.track_vectors(store.track_ids())
    camera_of = dict(
        store.db.execute("SELECT t.id, c.name FROM tracks t JOIN videos v ON v.id = t.video_id "
                         "JOIN cameras c ON c.id = v.camera_id")
    )
    position = {int(track_id): i for i, track_id in enumerate(ids.tolist())}
    pairs = [
        (position[a], position[b])
        for a, b in store.db.execute(
            "SELECT a.id, b.id FROM tracks a JOIN tracks b ON b.video_id = a.video_id AND b.id > a.id "
            "AND b.first_frame <= a.last_frame AND a.first_frame <= b.last_frame"
        )
        if a in position and b in position
    ]
    return StoreTracks(
        ids=ids,
        features=features,
        cameras=[str(camera_of[int(t)]) for t in ids.tolist()],
        cannot_link=np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2),
    )


def different_hit_scores(store: Store, tracks: StoreTracks, seed: int = 0) -> DifferentPeople | None:
    """The hit scores a search gives one track of a cannot-link pair when querying with the other (its best crop
    against the query, queried both with the other track's pooled feature and with its most typical crop), over
    ``MAX_EVIDENCE_PAIRS`` pairs at most (sampled with ``seed``): what a search score means between different
    people in this store."""
    scores: list[float] = []
    pairs = _sampled(tracks.cannot_link, seed)
    for start in range(0, len(pairs), _PAIRS_PER_READ):  # crops of a few hundred tracks in memory at a time
        chunk = pairs[start : start + _PAIRS_PER_READ]
        crops = _crops_by_track(store, tracks.ids[np.unique(chunk)])
        for a, b in chunk.tolist():
            for query, other in ((a, b), (b, a)):
                own, gallery = crops[int(tracks.ids[query])], crops[int(tracks.ids[other])]
                typical = own[int(np.argmax(own @ tracks.features[query]))]
                scores += [float(np.max(gallery @ tracks.features[query])), float(np.max(gallery @ typical))]
    return DifferentPeople.from_scores(np.array(scores))


def different_track_similarity(features: np.ndarray, cannot_link: np.ndarray, seed: int = 0) -> DifferentPeople | None:
    """The cosine of the pooled features of cannot-link pairs: how alike different people's tracks are."""
    pairs = _sampled(cannot_link, seed)
    return DifferentPeople.from_scores(np.einsum("ij,ij->i", features[pairs[:, 0]], features[pairs[:, 1]]))


def _sampled(pairs: np.ndarray, seed: int) -> np.ndarray:
    if len(pairs) <= MAX_EVIDENCE_PAIRS:
        return pairs
    return pairs[np.random.default_rng(seed).choice(len(pairs), MAX_EVIDENCE_PAIRS, replace=False)]


def _crops_by_track(store: Store, track_ids: np.ndarray) -> dict[int, np.ndarray]:
    _, owners, features = store.track_detection_features(track_ids)
    order = np.argsort(owners, kind="stable")
    owners, features = owners[order], features[order]
    found, starts = np.unique(owners, return_index=True)
    return {int(t): part for t, part in zip(found.tolist(), np.split(features, starts[1:]))}


def membership_confidence(
    features: np.ndarray, labels: np.ndarray, evidence: DifferentPeople | None
) -> np.ndarray:
    """How sure each track's person is, read off the known-different pairs (``evidence``): for a track grouped
    with others, the share of known-different pairs less alike than the track is, on average, to its group's
    other tracks; for a track alone, the share more alike than the track is to its closest other track (how sure
    that it is nobody else). Without evidence (no two people ever shared a frame) nothing can be said: 0.5."""
    if evidence is None or len(labels) == 0:
        return np.full(len(labels), 0.5)
    if len(labels) == 1:
        return np.ones(1)
    unique, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(unique), features.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, features)
    confidence = np.empty(len(labels))
    for i in range(len(labels)):
        size = sizes[inverse[i]]
        if size > 1:  # mean cosine with the group's other tracks, from the group's feature sum
            mean = (float(features[i] @ sums[inverse[i]]) - float(features[i] @ features[i])) / (size - 1)
            confidence[i] = evidence.confidence(mean)
    alone = np.flatnonzero(sizes[inverse] == 1)
    for start in range(0, len(alone), 1024):  # nearest other track, a block of rows at a time
        block = alone[start : start + 1024]
        similarity = features[block] @ features.T
        similarity[np.arange(len(block)), block] = -np.inf
        confidence[block] = [1.0 - evidence.confidence(float(v)) for v in similarity.max(axis=1)]
    return confidence


def group_store(store: Store, options: ClusterOptions | None = None) -> GroupingReport:
    """Cluster the store's tracks into people and save them (replacing any earlier clustering). ``options``: the
    core's (default: its default method and parameters); per-camera normalisation is always on."""
    options = replace(options or ClusterOptions(), camera_norm=True)
    started = time.monotonic()
    if store.model is None or store.count_rows("tracks") == 0:
        raise StoreError(f"store {store.root} holds no tracks yet; ingest a video with people in it first")
    tracks = store_tracks(store)
    hit_scores = different_hit_scores(store, tracks)
    labels, core_params = _cluster(tracks, options)
    # Tracks compare without each camera's cast (as the core clusters them): known-different pairs all share a
    # camera, and a person's tracks in two cameras would otherwise look less alike than they are.
    normalised, _ = camera_normalise(tracks.features, tracks.cameras)
    track_similarity = different_track_similarity(normalised, tracks.cannot_link)
    confidence = membership_confidence(normalised, labels, track_similarity)
    params: dict[str, Any] = {
        **core_params,
        "items": "tracks (pooled feature: a track's crops are one person)",
        "cannot_link": "tracks of one video overlapping in time",
        "cannot_link_pairs": int(len(tracks.cannot_link)),
        "different_people_hit_scores": None if hit_scores is None else hit_scores.to_params(),
        "different_people_track_similarity": None if track_similarity is None else track_similarity.to_params(),
    }
    saved = save_people(
        store, options.method, params,
        {int(t): (int(label), float(c)) for t, label, c in zip(tracks.ids.tolist(), labels.tolist(), confidence)},
    )
    sizes = np.unique(labels, return_counts=True)[1]
    cameras_per_person: dict[int, set[str]] = {}
    for label, camera in zip(labels.tolist(), tracks.cameras):
        cameras_per_person.setdefault(label, set()).add(camera)
    return GroupingReport(
        clustering=saved,
        tracks=len(labels),
        people=len(sizes),
        people_seen_twice=int(np.sum(sizes > 1)),
        cross_camera=sum(len(c) > 1 for c in cameras_per_person.values()),
        cannot_link_pairs=int(len(tracks.cannot_link)),
        seconds=time.monotonic() - started,
    )


def _cluster(tracks: StoreTracks, options: ClusterOptions) -> tuple[np.ndarray, dict[str, Any]]:
    """One label per track from the clustering core, every track labelled: a track the method leaves alone is a
    person of its own.

    The core takes cannot-link as one key per item (a frame), which fits crops, not tracks spanning many frames;
    tracks of one video overlapping in time are kept apart here instead, by the core's own split of any cluster
    that holds such a pair (``split_conflicts``)."""
    found = cluster_features(tracks.features, options, cameras=tracks.cameras)
    labels, split = split_conflicts(found.labels, found.confidence, tracks.features, tracks.cannot_link)
    alone = np.flatnonzero(labels == UNCLUSTERED)
    labels[alone] = int(labels.max(initial=-1)) + 1 + np.arange(len(alone))
    return labels, {**found.params, "clusters_split_by_time_overlap": split, "tracks_alone": int(len(alone))}
