"""Where did the person go, and how long did they stay: search hits turned into visits, in time order.

A track is one sighting (a continuous walk in one camera). Sightings in the same camera less than
``MERGE_GAP_S`` apart are one visit, because a tracker loses people behind others and starts a new track when
they reappear; the visit then spans from the first sighting's first crop to the last one's last crop. A person
who leaves camera A for B and comes back to A makes three visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reidkit.search.results import Hit, Visit
from reidkit.store.rows import TrackRow, epoch_seconds, track_time_key

MERGE_GAP_S = 60.0


@dataclass(frozen=True)
class Sighting:
    """A track on a person's trajectory: its best crop's ``score`` against the query, and how sure we are that it
    is the person (None where nothing says: a trajectory of plain hits)."""

    track: TrackRow
    score: float
    confidence: float | None = None


def build_trajectory(hits: Sequence[Hit]) -> list[Visit]:
    """The hits' tracks as visits in time order (tracks without wall-clock time come last, by video and time)."""
    return build_visits([Sighting(hit.track, hit.score) for hit in hits])


def build_visits(sightings: Sequence[Sighting]) -> list[Visit]:
    """Sightings as visits in time order; a visit is as sure as its surest sighting."""
    visits: list[Visit] = []
    for sighting in sorted(sightings, key=lambda s: track_time_key(s.track)):
        track = sighting.track
        previous = visits[-1] if visits else None
        if previous is not None and previous.camera == track.camera and _gap_s(previous, track) <= MERGE_GAP_S:
            visits[-1] = Visit(
                camera=previous.camera,
                video_id=previous.video_id,
                first_seen=previous.first_seen,
                last_seen=_later(previous.last_seen, track.last_seen),
                first_time_s=previous.first_time_s,
                last_time_s=max(previous.last_time_s, track.last_time_s),
                sightings=previous.sightings + 1,
                crops=previous.crops + track.num_crops,
                best_score=max(previous.best_score, sighting.score),
                track_ids=previous.track_ids + (track.id,),
                confidence=_surer(previous.confidence, sighting.confidence),
            )
            continue
        visits.append(
            Visit(
                camera=track.camera,
                video_id=track.video_id,
                first_seen=track.first_seen,
                last_seen=track.last_seen,
                first_time_s=track.first_time_s,
                last_time_s=track.last_time_s,
                sightings=1,
                crops=track.num_crops,
                best_score=sighting.score,
                track_ids=(track.id,),
                confidence=sighting.confidence,
            )
        )
    return visits


def _gap_s(visit: Visit, track: TrackRow) -> float:
    if visit.last_seen is not None and track.first_seen is not None:
        return epoch_seconds(track.first_seen) - epoch_seconds(visit.last_seen)
    if visit.last_seen is None and track.first_seen is None and visit.video_id == track.video_id:
        return track.first_time_s - visit.last_time_s
    return float("inf")  # no common clock: never merge


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return a if epoch_seconds(a) >= epoch_seconds(b) else b


def _surer(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)
