"""What a person search answers, as plain records: the ranked hits and the person's visits to each camera.

Pages, figures, the CLI's tables and JSON all take these (never the store), so they can be drawn from a search made
anywhere: a CLI run, a service, or a saved result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from reidkit.store.paths import stored_file
from reidkit.store.rows import DetectionRow, TrackRow


@dataclass(frozen=True)
class Hit:
    rank: int
    track: TrackRow
    score: float
    track_score: float
    best: DetectionRow
    rerank_distance: float | None = None
    person_id: int | None = None  # the person the store's clustering put the track with (None: not clustered)
    person_confidence: float | None = None
    attributes: dict[str, tuple[str, float]] | None = None  # the track's most probable values (store with them)
    description_probability: float | None = None  # the track's probability of the searched description, if any


@dataclass
class SearchResult:
    hits: list[Hit]
    trajectory: list[Visit]
    candidates: int  # tracks scored before the top-k cut
    reranked: bool
    notes: list[str] = field(default_factory=list)
    person_id: int | None = None  # the query's person, when the trajectory was built from identities
    identity: bool = False  # True: the trajectory is the query's person's (else: the hits in time order)


@dataclass(frozen=True)
class Visit:
    """One stay in one camera. ``first_seen``/``last_seen`` are wall-clock times; they are None when the video
    was ingested without ``--start-time``, and ``first_time_s``/``last_time_s`` (seconds into video ``video_id``)
    then place the visit."""

    camera: str
    video_id: int
    first_seen: datetime | None
    last_seen: datetime | None
    first_time_s: float
    last_time_s: float
    sightings: int
    crops: int
    best_score: float
    track_ids: tuple[int, ...]
    confidence: float | None = None  # how sure that this stay is the query's person (identity trajectories)

    @property
    def duration_s(self) -> float:
        if self.first_seen is not None and self.last_seen is not None:
            return (self.last_seen - self.first_seen).total_seconds()
        return self.last_time_s - self.first_time_s


def format_time(moment: datetime | None, seconds: float) -> str:
    """Wall-clock time to the tenth of a second, or ``+12.3s`` into the video when it was ingested without
    ``--start-time``."""
    if moment is None:
        return f"+{seconds:.1f}s"
    return moment.isoformat(sep=" ", timespec="milliseconds")[:-2]


@dataclass(frozen=True)
class QueryDescription:
    kind: str  # crop, frame+box, frame+detector, track, description
    source: str
    box: tuple[float, float, float, float] | None = None
    track_id: int | None = None


def result_json(
    result: SearchResult, query: QueryDescription, store_root: Path, model_id: str, crop_paths: bool = True
) -> dict[str, Any]:
    """What ``reidkit search --json`` prints; ``crop_paths=False`` leaves out each hit's crop file (the service
    links crops by URL instead, and resolving each path through the file system is not free)."""
    return {
        "query": {"kind": query.kind, "source": query.source, "box": query.box, "track_id": query.track_id},
        "store": str(store_root),
        "model_id": model_id,
        "candidates": result.candidates,
        "reranked": result.reranked,
        "person_id": result.person_id,
        "trajectory_from": "identity" if result.identity else "hits",
        "hits": [_hit_json(hit, store_root if crop_paths else None) for hit in result.hits],
        "trajectory": [visit_json(visit) for visit in result.trajectory],
        "notes": result.notes,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _hit_json(hit: Hit, store_root: Path | None) -> dict[str, Any]:
    best, track = hit.best, hit.track
    found = {
        "rank": hit.rank,
        "track_id": track.id,
        "camera": best.camera,
        "video_id": track.video_id,
        "score": round(hit.score, 5),
        "track_score": round(hit.track_score, 5),
        "rerank_distance": None if hit.rerank_distance is None else round(hit.rerank_distance, 5),
        "time": _iso(best.wall_time),
        "time_s": round(best.time_s, 3),
        "frame_index": best.frame_index,
        "box": [round(v, 1) for v in best.box],
        "detection_id": best.id,
        "first_seen": _iso(track.first_seen),
        "last_seen": _iso(track.last_seen),
        "first_time_s": round(track.first_time_s, 3),
        "last_time_s": round(track.last_time_s, 3),
        "num_crops": track.num_crops,
        "person_id": hit.person_id,
        "person_confidence": None if hit.person_confidence is None else round(hit.person_confidence, 4),
        "description_probability": (None if hit.description_probability is None
                                    else round(hit.description_probability, 5)),
        "attributes": None if hit.attributes is None else {
            name: {"value": value, "confidence": round(confidence, 4)}
            for name, (value, confidence) in hit.attributes.items()
        },
    }
    if store_root is not None:
        found["crop"] = str(stored_file(store_root, best.crop_path))
    return found


def visit_json(visit: Visit) -> dict[str, Any]:
    return {
        "camera": visit.camera,
        "video_id": visit.video_id,
        "first_seen": _iso(visit.first_seen),
        "last_seen": _iso(visit.last_seen),
        "first_time_s": round(visit.first_time_s, 3),
        "last_time_s": round(visit.last_time_s, 3),
        "duration_s": round(visit.duration_s, 3),
        "sightings": visit.sightings,
        "crops": visit.crops,
        "best_score": round(visit.best_score, 5),
        "track_ids": list(visit.track_ids),
        "confidence": None if visit.confidence is None else round(visit.confidence, 4),
    }
