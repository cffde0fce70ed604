"""Search results as the terminal shows them: text tables of hits and of the trajectory (JSON: ``search.results``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reidkit.search.paths import stored_file
from reidkit.search.results import Hit, Visit, format_time


def hits_table(hits: list[Hit], store_root: Path) -> str:
    """One row per track: ``score`` is its best crop's cosine with the query, ``track`` its pooled feature's.
    Camera names are shown whole: the column widens to the longest."""
    width = _camera_width(hit.best.camera for hit in hits)
    lines = [
        f"{'rank':>4} {'score':>6} {'track':>6} {'camera':<{width}} {'id':>6} {'time':<23} {'frame':>6}  {'box':<19} "
        "crop"
    ]
    for hit in hits:
        best = hit.best
        box = ",".join(f"{v:.0f}" for v in best.box)
        lines.append(
            f"{hit.rank:>4} {hit.score:>6.3f} {hit.track_score:>6.3f} {best.camera:<{width}} {hit.track.id:>6} "
            f"{format_time(best.wall_time, best.time_s):<23} {best.frame_index:>6}  {box:<19} "
            f"{stored_file(store_root, best.crop_path)}"
        )
    return "\n".join(lines)


def trajectory_table(visits: list[Visit]) -> str:
    width = _camera_width(visit.camera for visit in visits)
    lines = [
        f"{'#':>2} {'camera':<{width}} {'first seen':<23} {'last seen':<23} {'duration':>9} {'sightings':>9} "
        f"{'crops':>6}"
    ]
    for number, visit in enumerate(visits, start=1):
        lines.append(
            f"{number:>2} {visit.camera:<{width}} {format_time(visit.first_seen, visit.first_time_s):<23} "
            f"{format_time(visit.last_seen, visit.last_time_s):<23} {visit.duration_s:>8.1f}s {visit.sightings:>9} "
            f"{visit.crops:>6}"
        )
    return "\n".join(lines)


def _camera_width(names: Iterable[str]) -> int:
    return max([12, *map(len, names)])
