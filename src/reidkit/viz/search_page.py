"""One self-contained HTML page for a person search: the query, the hits' crops and the person's trajectory.

Everything is inline (JPEG data URIs, CSS, an SVG timeline) so the page can be mailed or archived as one file and
still show the evidence years later, with no server and no reference to the store's crop files. Crop paths come
from the store and are read only inside it (``reidkit.store.paths.stored_file``), and the page is never written
into the store folder, where it could overwrite the database.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from reidkit.search.results import Hit, SearchResult, Visit, format_time
from reidkit.store.paths import refuse_inside_store, stored_file
from reidkit.store.rows import epoch_seconds

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.query{display:flex;gap:16px;align-items:flex-start}
.query img{height:192px;border:3px solid #333}
.hits{display:flex;flex-wrap:wrap;gap:10px}
.hit{width:112px;font-size:11px;line-height:1.3}
.hit img{width:96px;height:192px;object-fit:contain;background:#eee;border:2px solid #999}
.hit.top img{border-color:#2a7}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.note{color:#a60}
"""
_LANE_HEIGHT, _LEFT, _WIDTH = 34, 110, 860


def write_search_page(
    path: Path,
    result: SearchResult,
    store_root: Path,
    query_image: np.ndarray | None,
    query_label: str,
) -> Path:
    """Write the page to ``path`` atomically (temporary file + rename) and return it; ``ConfigError`` when ``path``
    lies inside the store folder, ``StoreError`` when a hit's stored crop path leads outside it."""
    refuse_inside_store(store_root, path, "search page")
    query_html = (
        f'<img src="{_data_uri(_jpeg(query_image))}" alt="query">' if query_image is not None else ""
    )
    hits_html = "".join(_hit_card(hit, store_root) for hit in result.hits)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    title = "reidkit person search"
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><div class='query'>{query_html}<div><b>query</b><br>{html.escape(query_label)}<br>"
        f"{len(result.hits)} tracks shown of {result.candidates} scored"
        f"{' (k-reciprocal re-ranked)' if result.reranked else ''}</div></div>{notes}"
        "<h2>Best matches, one per track (score: its best crop's cosine with the query; "
        "track: its mean feature's)</h2>"
        f"<div class='hits'>{hits_html or '<p>no match</p>'}</div>"
        f"<h2>Trajectory{_whose(result)}</h2>{_trajectory_table(result.trajectory)}{_timeline_svg(result.trajectory)}"
        "</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path


def _hit_card(hit: Hit, store_root: Path) -> str:
    best = hit.best
    crop_file = stored_file(store_root, best.crop_path)
    image = (
        f'<img src="{_data_uri(crop_file.read_bytes())}" alt="track {hit.track.id}">' if crop_file.is_file()
        else "<p>(crop file missing)</p>"
    )
    rerank = f"<br>re-ranked dist {hit.rerank_distance:.3f}" if hit.rerank_distance is not None else ""
    return (
        f"<div class='hit{' top' if hit.rank == 1 else ''}'>{image}<br><b>#{hit.rank}</b> score {hit.score:.3f}"
        f"<br>track {hit.track_score:.3f}{rerank}<br>{html.escape(best.camera)} · track {hit.track.id}"
        f"<br>{html.escape(format_time(best.wall_time, best.time_s))}"
        f"{'' if hit.person_id is None else f'<br>person {hit.person_id}'}</div>"
    )


def _whose(result: SearchResult) -> str:
    if not result.identity:
        return " (the hits in time order)"
    return " of the query's person" + ("" if result.person_id is None else f" (person {result.person_id})")


def _trajectory_table(visits: list[Visit]) -> str:
    if not visits:
        return "<p>no sighting</p>"
    rows = "".join(
        f"<tr><td>{i}</td><td>{html.escape(v.camera)}</td><td>{format_time(v.first_seen, v.first_time_s)}</td>"
        f"<td>{format_time(v.last_seen, v.last_time_s)}</td><td>{v.duration_s:.1f} s</td><td>{v.sightings}</td>"
        f"<td>{v.crops}</td><td>{v.best_score:.3f}</td><td>{'-' if v.confidence is None else f'{v.confidence:.2f}'}</td>"
        "</tr>"
        for i, v in enumerate(visits, start=1)
    )
    return (
        "<table><tr><th>#</th><th>camera</th><th>first seen</th><th>last seen</th><th>duration</th>"
        f"<th>sightings</th><th>crops</th><th>best score</th><th>sure</th></tr>{rows}</table>"
    )


def _timeline_svg(visits: list[Visit]) -> str:
    """One lane per camera, one bar per visit, on a shared time axis (wall clock, or video seconds if any visit
    lacks it)."""
    if not visits:
        return ""
    wall = all(v.first_seen is not None for v in visits)
    starts = [_axis_seconds(v, wall, first=True) for v in visits]
    ends = [_axis_seconds(v, wall, first=False) for v in visits]
    t0, t1 = min(starts), max(ends)
    span = max(t1 - t0, 1e-6)
    cameras = list(dict.fromkeys(v.camera for v in visits))
    height = _LANE_HEIGHT * len(cameras) + 30

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span * (_WIDTH - _LEFT - 10)

    parts = [f'<svg width="{_WIDTH}" height="{height}" font-size="12">']
    for lane, camera in enumerate(cameras):
        y = lane * _LANE_HEIGHT + 8
        parts.append(f'<text x="4" y="{y + 16}">{html.escape(camera)}</text>')
        parts.append(f'<line x1="{_LEFT}" y1="{y + 12}" x2="{_WIDTH - 10}" y2="{y + 12}" stroke="#ddd"/>')
    for number, (visit, start, end) in enumerate(zip(visits, starts, ends), start=1):
        y = cameras.index(visit.camera) * _LANE_HEIGHT + 8
        left, right = x(start), max(x(end), x(start) + 3)
        parts.append(
            f'<rect x="{left:.1f}" y="{y}" width="{right - left:.1f}" height="24" fill="#2a7" opacity="0.75">'
            f"<title>{html.escape(visit.camera)}: {visit.duration_s:.1f} s, {visit.sightings} sightings</title></rect>"
            f'<text x="{left + 2:.1f}" y="{y + 16}" fill="#fff">{number}</text>'
        )
    base = height - 6
    first_label = format_time(visits[0].first_seen, visits[0].first_time_s)
    parts.append(f'<text x="{_LEFT}" y="{base}">{html.escape(first_label)}</text>')
    parts.append(f'<text x="{_WIDTH - 10}" y="{base}" text-anchor="end">+{span:.1f} s</text></svg>')
    return "".join(parts)


def _axis_seconds(visit: Visit, wall: bool, first: bool) -> float:
    """Seconds on the timeline: wall clock when every visit has it, else seconds into each visit's video."""
    moment = visit.first_seen if first else visit.last_seen
    if wall and moment is not None:
        return epoch_seconds(moment)
    return visit.first_time_s if first else visit.last_time_s


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
