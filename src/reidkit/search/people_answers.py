"""The one JSON shape of the store's people: ``reidkit people --json`` and ``GET /people`` both print these.

As search results share ``results.result_json``, the people answers are built once here, so the CLI and the API
cannot drift apart; the service only adds its links (``person_url``, ``track_url``), which mean nothing offline.
"""

from __future__ import annotations

from typing import Any

from reidkit.search.identity import person_trajectory
from reidkit.search.people import Person, clustering, people, unclustered_tracks
from reidkit.search.results import visit_json
from reidkit.store.reader import StoreReader
from reidkit.store.rows import epoch_seconds


def people_answer(store: StoreReader) -> dict[str, Any]:
    """The clustering (None when the store was never clustered) and every person's summary."""
    held = clustering(store)
    if held is None:
        return {"clustering": None, "people": []}
    return {
        "clustering": {"model_id": held.model_id, "method": held.method, "params": held.params,
                       "created_at": held.created_at, "unclustered_tracks": unclustered_tracks(store)},
        "people": [person_summary(found) for found in people(store)],
    }


def person_answer(store: StoreReader, found: Person) -> dict[str, Any]:
    """One person: summary, tracks with their confidences, trajectory (impossible moves left out) and notes."""
    visits, notes = person_trajectory(store, found)
    return {
        "person": person_summary(found),
        "tracks": [
            {"id": track.id, "camera": track.camera, "video_id": track.video_id,
             "first_seen": _iso(track.first_seen), "last_seen": _iso(track.last_seen),
             "first_time_s": round(track.first_time_s, 3), "last_time_s": round(track.last_time_s, 3),
             "num_crops": track.num_crops, "confidence": round(found.track_confidence[track.id], 4)}
            for track in found.tracks
        ],
        "trajectory": [visit_json(visit) for visit in visits],
        "notes": notes,
    }


def person_summary(found: Person) -> dict[str, Any]:
    timed = [track for track in found.tracks if track.last_seen is not None]
    last = max(timed, key=lambda t: epoch_seconds(t.last_seen), default=None)  # type: ignore[arg-type]
    return {
        "id": found.id, "confidence": round(found.confidence, 4), "tracks": len(found.tracks),
        "cameras": found.cameras, "first_seen": _iso(found.tracks[0].first_seen),
        "last_seen": None if last is None else _iso(last.last_seen),
    }


def _iso(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat()
