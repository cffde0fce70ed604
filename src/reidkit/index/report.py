"""Search results as the CLI prints them: a text table for people, one JSON object for programs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reidkit.index.search import Hit, SearchResult
from reidkit.index.trajectory import Visit


@dataclass(frozen=True)
class QueryDescription:
    kind: str  # crop, frame+box, frame+detector, track
    source: str
    box: tuple[float, float, float, float] | None = None
    track_id: int | None = None


def format_time(moment: datetime | None, seconds: float) -> str:
    """Wall-clock time to the tenth of a second, or ``+12.3s`` into the video when it was ingested without
    ``--start-time``."""
    if moment is None:
        return f"+{seconds:.1f}s"
    return moment.isoformat(sep=" ", timespec="milliseconds")[:-2]


def result_json(result: SearchResult, query: QueryDescription, store_root: Path, model_id: str) -> dict[str, Any]:
    return {
        "query": {"kind": query.kind, "source": query.source, "box": query.box, "track_id": query.track_id},
        "store": str(store_root),
        "model_id": model_id,
        "candidates": result.candidates,
        "reranked": result.reranked,
        "hits": [_hit_json(hit, store_root) for hit in result.hits],
        "trajectory": [_visit_json(visit) for visit in result.trajectory],
        "notes": result.notes,
    }


def hits_table(hits: list[Hit], store_root: Path) -> str:
    """One row per track: ``score`` is its best crop's cosine with the query, ``track`` its pooled feature's."""
    lines = [
        f"{'rank':>4} {'score':>6} {'track':>6} {'camera':<12} {'id':>6} {'time':<23} {'frame':>6}  {'box':<19} crop"
    ]
    for hit in hits:
        best = hit.best
        box = ",".join(f"{v:.0f}" for v in best.box)
        lines.append(
            f"{hit.rank:>4} {hit.score:>6.3f} {hit.track_score:>6.3f} {best.camera:<12.12} {hit.track.id:>6} "
            f"{format_time(best.wall_time, best.time_s):<23} {best.frame_index:>6}  {box:<19} "
            f"{store_root / best.crop_path}"
        )
    return "\n".join(lines)


def trajectory_table(visits: list[Visit]) -> str:
    lines = [
        f"{'#':>2} {'camera':<12} {'first seen':<23} {'last seen':<23} {'duration':>9} {'sightings':>9} {'crops':>6}"
    ]
    for number, visit in enumerate(visits, start=1):
        lines.append(
            f"{number:>2} {visit.camera:<12.12} {format_time(visit.first_seen, visit.first_time_s):<23} "
            f"{format_time(visit.last_seen, visit.last_time_s):<23} {visit.duration_s:>8.1f}s {visit.sightings:>9} "
            f"{visit.crops:>6}"
        )
    return "\n".join(lines)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _hit_json(hit: Hit, store_root: Path) -> dict[str, Any]:
    best, track = hit.best, hit.track
    return {
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
        "crop": str(store_root / best.crop_path),
        "detection_id": best.id,
        "first_seen": _iso(track.first_seen),
        "last_seen": _iso(track.last_seen),
        "first_time_s": round(track.first_time_s, 3),
        "last_time_s": round(track.last_time_s, 3),
        "num_crops": track.num_crops,
    }


def _visit_json(visit: Visit) -> dict[str, Any]:
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
    }
