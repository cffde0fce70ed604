"""A trajectory built from who the query is, not from the top-k list: the tracks of the query's person, plus hits
that the store's own evidence says are very likely them, minus moves no person can make.

The plain trajectory (``trajectory.build_trajectory``) turns every one of the top-k hits into a visit, so every
wrong hit becomes a wrong visit. Here:

1. **The query's person**: for ``--track T``, T's person; for a photo, the person of the best-ranked hit whose
   score passes the same-person threshold (below).
2. **Its tracks**: every track the clustering put with that person (inside the search's filters), each as sure as
   the query's person times the track's membership confidence; a track less likely the person than not
   (confidence under ``LIKELY``, 0.5) is left out, with a note.
3. **Strong hits**: a hit whose score beats ``evidence.SAME_PERSON_QUANTILE`` (99%) of the known-different pairs
   of this store (tracks of one video overlapping in time, ``evidence.DifferentPeople``) joins even when the
   clustering put it elsewhere; its confidence is the share of known-different pairs it beats.
4. **Impossible moves**: one person is not in two places at once. Taking tracks from the surest down, a track that
   overlaps in time (on a common clock) a track already kept, in another camera or as another track of the same
   camera, is dropped, with a note naming what it clashed with.

Visits then form as in ``trajectory`` (sightings in one camera less than 60 s apart), each as sure as its surest
track.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reidkit.search.evidence import DifferentPeople
from reidkit.search.people import Membership, Person, clustering, memberships, person
from reidkit.search.results import Hit, Visit, format_time
from reidkit.search.scoring import score_tracks
from reidkit.search.trajectory import Sighting, build_visits
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import TrackRow, epoch_seconds, normalise_rows

HIT_EVIDENCE = "different_people_hit_scores"
# A track shown on a trajectory must be more likely the person than not.
LIKELY = 0.5


@dataclass
class IdentityTrajectory:
    person_id: int | None  # the query's person (None: no hit was sure enough to name one)
    visits: list[Visit]
    sightings: list[Sighting]  # the kept tracks
    threshold: float | None  # the hit score that joins without the clustering
    notes: list[str] = field(default_factory=list)


def identity_trajectory(
    store: StoreReader,
    query: np.ndarray,
    hits: Sequence[Hit],
    filters: SearchFilters = SearchFilters(),
    query_track: int | None = None,
    exclude_track: int | None = None,
    min_score: float = 0.0,
) -> IdentityTrajectory | None:
    """The query's trajectory from the store's people (None when the store was never clustered)."""
    held = clustering(store)
    if held is None:
        return None
    evidence = DifferentPeople.from_params(held.params.get(HIT_EVIDENCE))
    threshold = None if evidence is None else max(evidence.threshold, min_score)
    placed = memberships(store, [hit.track.id for hit in hits] + ([query_track] if query_track else []))
    person_id, query_confidence = _query_person(hits, placed, query_track, evidence, threshold)

    chosen: dict[int, Sighting] = {}
    found = None if person_id is None else person(store, person_id)
    if found is not None:
        members = {track.id: track for track in found.tracks}
        if exclude_track is not None and exclude_track != query_track:
            members.pop(exclude_track, None)  # left out of the hits, so out of the trajectory too
        for track_id, score, _, _ in score_tracks(store, query, set(members), filters):
            sure = 1.0 if track_id == query_track else query_confidence * found.track_confidence[track_id]
            chosen[track_id] = Sighting(members[track_id], score, sure)
    if threshold is not None and evidence is not None:
        for hit in hits:
            if hit.score >= threshold:
                sure = evidence.confidence(hit.score)
                known = chosen.get(hit.track.id)
                if known is None or (known.confidence or 0.0) < sure:
                    chosen[hit.track.id] = Sighting(hit.track, hit.score, sure)
    doubtful = sorted(t for t, sighting in chosen.items() if (sighting.confidence or 0.0) < LIKELY)
    kept, notes = drop_impossible_moves([sighting for t, sighting in chosen.items() if t not in doubtful])
    if doubtful:
        notes.insert(0, f"track(s) {', '.join(map(str, doubtful))} of person {person_id} left out: less likely the "
                        f"query's person than not (confidence under {LIKELY})")
    if person_id is None:
        notes.insert(0, "no hit is sure enough to name the query's person; the trajectory holds only hits scoring "
                        f"at least {threshold:.3f}" if threshold is not None else
                        "the store has no known-different pairs to tell how alike is alike enough, and the query's "
                        "track was not clustered: no trajectory")
    return IdentityTrajectory(person_id, build_visits(kept), kept, threshold, notes)


def _query_person(
    hits: Sequence[Hit],
    placed: dict[int, Membership],
    query_track: int | None,
    evidence: DifferentPeople | None,
    threshold: float | None,
) -> tuple[int | None, float]:
    if query_track is not None and query_track in placed:
        return placed[query_track].person_id, 1.0
    if threshold is None or evidence is None:
        return None, 0.0
    for hit in hits:
        if hit.score >= threshold and hit.track.id in placed:
            return placed[hit.track.id].person_id, evidence.confidence(hit.score)
    return None, 0.0


def drop_impossible_moves(sightings: list[Sighting]) -> tuple[list[Sighting], list[str]]:
    """Keep sightings from the surest down, dropping each that overlaps in time one already kept (one person is
    in one place at a time, and is one track of a camera at a time); notes say what was dropped and why."""
    kept: list[Sighting] = []
    notes: list[str] = []
    for sighting in sorted(sightings, key=lambda s: (-(s.confidence or 0.0), -s.score, s.track.id)):
        clash = next((other for other in kept if _overlap(sighting.track, other.track)), None)
        if clash is None:
            kept.append(sighting)
            continue
        track, other = sighting.track, clash.track
        notes.append(
            f"track {track.id} ({track.camera} {format_time(track.first_seen, track.first_time_s)}.."
            f"{format_time(track.last_seen, track.last_time_s)}, confidence {sighting.confidence or 0.0:.2f}) left "
            f"out: the person was {'also' if other.camera == track.camera else 'in ' + repr(other.camera)} "
            f"(track {other.id}, confidence {clash.confidence or 0.0:.2f}) at the same time"
        )
    return kept, notes


def _overlap(a: TrackRow, b: TrackRow) -> bool:
    """Whether two tracks overlap in time on a common clock (wall-clock, or the same video's); tracks with no
    common clock never clash."""
    if a.first_seen is not None and a.last_seen is not None and b.first_seen is not None and b.last_seen is not None:
        return epoch_seconds(a.first_seen) <= epoch_seconds(b.last_seen) and (
            epoch_seconds(b.first_seen) <= epoch_seconds(a.last_seen)
        )
    if a.video_id == b.video_id:
        return a.first_time_s <= b.last_time_s and b.first_time_s <= a.last_time_s
    return False


def person_trajectory(store: StoreReader, found: Person) -> tuple[list[Visit], list[str]]:
    """A person's own trajectory (no query): its tracks, each as sure as the clustering is of it and scored by its
    cosine with the person's pooled feature (``best_score``: how typical of the person), impossible moves left out
    as for a search."""
    ids, vectors = store.track_vectors(np.array([track.id for track in found.tracks], dtype=np.int64))
    centre = normalise_rows(vectors.sum(axis=0, keepdims=True))[0]
    typical = dict(zip(ids.tolist(), (vectors @ centre).tolist()))
    sightings = [
        Sighting(track, typical[track.id], found.track_confidence[track.id]) for track in found.tracks
        if track.id in typical
    ]
    kept, notes = drop_impossible_moves(sightings)
    return build_visits(kept), notes
