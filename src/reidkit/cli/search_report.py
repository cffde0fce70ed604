"""Search results as the terminal shows them: text tables of hits and of the trajectory (JSON: ``search.results``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from reidkit.search.results import Hit, SearchResult, Visit, format_time
from reidkit.store.paths import stored_file

if TYPE_CHECKING:
    from reidkit.search.people import Person


def hits_table(hits: list[Hit], store_root: Path) -> str:
    """One row per track: ``score`` is its best crop's cosine with the query, ``track`` its pooled feature's,
    ``person`` the person the store's clustering put the track with (``-`` where it has none). Camera names are
    shown whole: the column widens to the longest."""
    width = _camera_width(hit.best.camera for hit in hits)
    lines = [
        f"{'rank':>4} {'score':>6} {'track':>6} {'camera':<{width}} {'id':>6} {'person':>6} {'time':<23} {'frame':>6}  "
        f"{'box':<19} crop"
    ]
    for hit in hits:
        best = hit.best
        box = ",".join(f"{v:.0f}" for v in best.box)
        lines.append(
            f"{hit.rank:>4} {hit.score:>6.3f} {hit.track_score:>6.3f} {best.camera:<{width}} {hit.track.id:>6} "
            f"{'-' if hit.person_id is None else hit.person_id:>6} {format_time(best.wall_time, best.time_s):<23} "
            f"{best.frame_index:>6}  {box:<19} {stored_file(store_root, best.crop_path)}"
        )
        if hit.attributes:
            lines.append(f"{'':>12}{attribute_summary(hit.attributes)}")
    return "\n".join(lines)


def attribute_summary(attributes: dict[str, tuple[str, float]]) -> str:
    """A track's attributes in a few words: the values of the groups it is fairly sure of (p >= 0.6), yes/no
    groups by name only when yes (``backpack``), colours as ``upper red``."""
    words = []
    for name, (value, confidence) in attributes.items():
        if confidence < 0.6 or value in ("no", "other"):
            continue
        words.append(name if value == "yes" else f"{name} {value}")
    return ", ".join(words) or "(attributes uncertain)"


def trajectory_table(visits: list[Visit]) -> str:
    """One row per stay in a camera; ``sure`` (how sure the stay is the person's) where the trajectory was built
    from identities, ``-`` where it is plain hits."""
    width = _camera_width(visit.camera for visit in visits)
    lines = [
        f"{'#':>2} {'camera':<{width}} {'first seen':<23} {'last seen':<23} {'duration':>9} {'sightings':>9} "
        f"{'crops':>6} {'sure':>5} tracks"
    ]
    for number, visit in enumerate(visits, start=1):
        lines.append(
            f"{number:>2} {visit.camera:<{width}} {format_time(visit.first_seen, visit.first_time_s):<23} "
            f"{format_time(visit.last_seen, visit.last_time_s):<23} {visit.duration_s:>8.1f}s {visit.sightings:>9} "
            f"{visit.crops:>6} {'-' if visit.confidence is None else format(visit.confidence, '.2f'):>5} "
            f"{','.join(map(str, visit.track_ids))}"
        )
    return "\n".join(lines)


def people_table(people: list[Person]) -> str:
    """One row per person: how sure (mean of its tracks'), its tracks, cameras, first and last sighting."""
    width = _camera_width(", ".join(person.cameras) for person in people)
    lines = [f"{'person':>6} {'sure':>5} {'tracks':>6} {'cameras':<{width}} {'first seen':<23} {'last seen':<23} ids"]
    for person in people:
        first, last = person.tracks[0], person.tracks[-1]
        lines.append(
            f"{person.id:>6} {person.confidence:>5.2f} {len(person.tracks):>6} {', '.join(person.cameras):<{width}} "
            f"{format_time(first.first_seen, first.first_time_s):<23} "
            f"{format_time(last.last_seen, last.last_time_s):<23} {','.join(str(t.id) for t in person.tracks)}"
        )
    return "\n".join(lines)


def trajectory_heading(result: SearchResult) -> str:
    if result.identity:
        person = "no person named" if result.person_id is None else f"person {result.person_id}"
        return f"trajectory of the query's person ({person}; its tracks and sure hits, impossible moves left out):"
    return ("trajectory (hits in time order; one row per stay in a camera; `reidkit cluster --db` the store to "
            "build it from identities):")


def _camera_width(names: Iterable[str]) -> int:
    return max([12, *map(len, names)])
