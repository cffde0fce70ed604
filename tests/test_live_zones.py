"""Zones, dwell and counts (reidkit.live.zones, zone_report): scripted tracks written into a real store through its
own writer, so every number below is known in advance; bad polygons; CSV columns through the command line.

The scripted walker's foot point moves one pixel per frame along x (box ``(x - 5, 50, x + 5, 100)``: foot point
``(x, 100)``), so the frames a zone holds it are known exactly: a zone from x = 20.5 to 50.5 holds frames 21..50.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from reidkit.cli.main import main
from reidkit.errors import ConfigError
from reidkit.live.zone_report import COUNT_COLUMNS, PRESENCE_COLUMNS, parse_bucket, zone_report
from reidkit.live.zones import Zone, load_zones, parse_polygon, points_inside, remove_zone, save_zones
from reidkit.search.people import save_people
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader
from reidkit.store.rows import NewDetection, normalise_rows
from reidkit.store.writer import Store

FPS = 10.0
START = datetime(2024, 5, 1, 9, 0, 0)
ZONE = ((20.5, 80.0), (50.5, 80.0), (50.5, 120.0), (20.5, 120.0))
FRAMES_INSIDE = 30  # frames 21..50 of a walker moving one pixel per frame


def _walker(path_x: dict[int, float]) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(frame, box) of a walker whose foot point is at x = path_x[frame], y = 100."""
    return [(frame, (x - 5.0, 50.0, x + 5.0, 100.0)) for frame, x in sorted(path_x.items())]


def _store(root: Path, walkers: dict[int, list[tuple[int, tuple[float, float, float, float]]]], every_n: int = 2,
           start: datetime | None = START, camera: str = "gate") -> dict[int, int]:
    """A real store (through ``Store``'s own writer) holding one video of ``camera`` sampled every ``every_n`` frames
    and the walkers' boxes at the sampled frames; returns {walker key: track id}."""
    rng = np.random.default_rng(0)
    last = max(frame for boxes in walkers.values() for frame, _ in boxes)
    with Store.open(root, writable=True, create=True) as store:
        store.require_model("scripted", 8, "imagenet")
        video = store.add_video(camera, "walk.avi", f"fp-{camera}", 0, last + 1, every_n, "scripted", start, FPS,
                                200, 160)
        detections = [
            NewDetection(key, frame, frame / FPS, box, 0.9, 0.5, f"crops/{key}_{frame}.jpg",
                         normalise_rows(rng.standard_normal((1, 8)))[0])
            for key, boxes in walkers.items() for frame, box in boxes if frame % every_n == 0
        ]
        detections.sort(key=lambda d: d.frame_index)
        track_rows: dict[int, int] = {}
        store.commit_chunk(video.id, detections, last, track_rows)
        store.finish_video(video.id)
        store.save_indexes()
    return track_rows


def _report(root: Path, zones: list[Zone], **options: object):
    with StoreReader.open(root) as store:
        return zone_report(store, zones, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("every_n", [1, 2, 3])
def test_dwell_of_a_scripted_track_equals_its_frames_inside(tmp_path: Path, every_n: int) -> None:
    _store(tmp_path, {1: _walker({f: float(f) for f in range(80)})}, every_n=every_n)
    report = _report(tmp_path, [Zone("gate", "door", ZONE)], by="track")
    (row,) = report.presence
    truth = FRAMES_INSIDE / FPS
    assert abs(row.dwell_s - truth) <= 1 / FPS + 1e-9  # to one frame
    if every_n == 1:
        assert row.dwell_s == pytest.approx(truth, abs=1e-9) and row.samples_inside == FRAMES_INSIDE
    assert (row.entries, row.exits, row.subject, report.by) == (1, 1, "track", "track")
    sampled = [f for f in range(21, 51) if f % every_n == 0]
    assert row.first_inside == datetime(2024, 5, 1, 9, 0, sampled[0] // 10, sampled[0] % 10 * 100_000).isoformat(
        timespec="milliseconds") + "+00:00"


def test_entries_and_exits_of_a_track_crossing_in_and_out_twice(tmp_path: Path) -> None:
    there_and_back = {f: float(f) for f in range(80)} | {80 + f: float(79 - f) for f in range(80)}
    starts_inside = {f: 30.0 + f for f in range(40)}  # from x = 30 (inside) out to x = 69
    ids = _store(tmp_path, {1: _walker(there_and_back), 2: _walker(starts_inside)})
    report = _report(tmp_path, [Zone("gate", "door", ZONE)], by="track")
    rows = {row.subject_id: row for row in report.presence}
    assert (rows[ids[1]].entries, rows[ids[1]].exits) == (2, 2)
    assert rows[ids[1]].dwell_s == pytest.approx(2 * FRAMES_INSIDE / FPS, abs=2 / FPS)
    assert (rows[ids[2]].entries, rows[ids[2]].exits) == (1, 1)  # appeared inside: one entry at its first sample
    (summary,) = report.summaries
    assert (summary.subjects, summary.entries, summary.exits) == (2, 3, 3)


def test_counts_per_bucket(tmp_path: Path) -> None:
    walker = {f: float(f) for f in range(80)}  # inside 2.2 s .. 5.0 s (samples at even frames)
    stayer = {f: 35.0 for f in range(30, 40)}  # inside 3.0 s .. 3.8 s
    _store(tmp_path, {1: _walker(walker), 2: _walker(stayer)})
    report = _report(tmp_path, [Zone("gate", "door", ZONE)], bucket_s=parse_bucket("1s"), by="track")
    by_second = {row.bucket_start[17:19]: row for row in report.counts}
    assert list(by_second) == [f"{s:02d}" for s in range(8)]  # 0 s .. 7.8 s: every bucket listed, empty ones too
    assert [by_second[s].present for s in ("01", "02", "03", "04", "05", "06")] == [0, 1, 2, 1, 1, 0]
    assert [by_second[s].entries for s in ("02", "03", "04")] == [1, 1, 0]
    assert by_second["03"].exits == 0 and by_second["05"].exits == 1 and by_second["05"].dwell_s == 0.2
    assert by_second["04"].dwell_s == pytest.approx(1.0)  # five samples of 0.2 s
    assert sum(row.dwell_s for row in report.counts) == pytest.approx(sum(row.dwell_s for row in report.presence))
    # a time filter keeps only the sightings inside it
    filtered = _report(tmp_path, [Zone("gate", "door", ZONE)], by="track",
                       filters=SearchFilters(after=datetime(2024, 5, 1, 9, 0, 4), before=datetime(2024, 5, 1, 9, 0, 9)))
    assert {row.subject_id: row.dwell_s for row in filtered.presence} == {1: pytest.approx(1.2)}


def test_people_merge_their_tracks_frame_by_frame(tmp_path: Path) -> None:
    """Two overlapping tracks of one person count its frames inside once; a later track after a gap is a new walk."""
    first = {f: float(f) for f in range(60)}
    duplicate = {f: float(f) for f in range(30, 60)}  # the same person tracked twice over frames 30..59
    later = {f: 35.0 for f in range(100, 110)}  # back inside after a gap with no track alive
    ids = _store(tmp_path, {1: _walker(first), 2: _walker(duplicate), 3: _walker(later)})
    with Store.open(tmp_path, writable=True) as store:
        save_people(store, "scripted", {}, {ids[1]: (7, 0.9), ids[2]: (7, 0.8), ids[3]: (7, 0.9)})
    report = _report(tmp_path, [Zone("gate", "door", ZONE)])
    assert report.by == "person"
    (row,) = report.presence
    assert row.subject == "person" and row.tracks == tuple(sorted(ids.values()))
    assert row.samples_inside == 15 + 5 and row.dwell_s == pytest.approx(4.0)
    assert (row.entries, row.exits) == (2, 1)  # left at frame 52, came back at 100 and was last seen inside
    by_track = _report(tmp_path, [Zone("gate", "door", ZONE)], by="track")
    assert sum(r.samples_inside for r in by_track.presence) == 15 + 11 + 5


@pytest.mark.parametrize(("polygon", "words"), [
    ("[[0, 0], [10, 0]]", "at least 3 points"),
    ("[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]", "is not JSON"),
    ('[[0, 0], [10, 0], ["a", 10]]', "point 3 must be [x, y]"),
    ("[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]", "repeats point 5"),
    ("[[0, 0], [10, 0], [20, 0]]", "folds back on itself at edges 1 and 3"),
    ("[[0, 0], [10, 10], [10, 0], [0, 10]]", "crosses itself: edge 1 meets edge 3"),
    ("[[0, 0], [300, 0], [300, 10]]", "point 2 (300, 0) lies outside the camera's 200x160 frame"),
    ("[[0, 0], [10, 0], [5, 0], [5, 10]]", "folds back"),
])
def test_bad_polygons_are_refused_with_one_line(polygon: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_polygon(polygon, "--polygon", (200, 160))
    message = str(refused.value)
    assert message.startswith("--polygon") and words in message and "\n" not in message


def test_points_inside_matches_matplotlib_away_from_the_outline() -> None:
    from matplotlib.path import Path as PolygonPath

    polygon = ((10.0, 10.0), (90.0, 20.0), (60.0, 50.0), (95.0, 90.0), (20.0, 80.0), (40.0, 45.0))
    points = np.random.default_rng(3).uniform(0, 100, (5000, 2))
    ours = points_inside(points, polygon)
    theirs = PolygonPath(polygon).contains_points(points)
    assert 0.2 < ours.mean() < 0.8 and (ours == theirs).all()
    assert points_inside(np.array([[10.0, 10.0], [50.0, 15.0], [0.0, 0.0]]), polygon).tolist() == [True, True, False]


def test_zones_are_kept_in_live_sqlite(tmp_path: Path) -> None:
    save_zones(tmp_path, [Zone("gate", "door", ZONE), Zone("gate", "desk", ((0, 0), (5, 0), (5, 5)))])
    save_zones(tmp_path, [Zone("gate", "door", ((1, 1), (9, 1), (9, 9)))])  # same name: replaced
    assert [(z.name, z.polygon[0]) for z in load_zones(tmp_path, "gate")] == [("desk", (0, 0)), ("door", (1, 1))]
    assert remove_zone(tmp_path, "gate", "desk") and not remove_zone(tmp_path, "gate", "desk")
    assert load_zones(tmp_path, "other") == [] and (tmp_path / "live.sqlite").is_file()


def _reidkit(args: list[str], capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``reidkit ARGS`` through the command's own entry point (one-line errors, exit 2): (exit code, out, err)."""
    monkeypatch.setattr(sys, "argv", ["reidkit", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    out, err = capsys.readouterr()
    return int(ended.value.code or 0), out, err


def test_cli_add_report_csv_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    _store(store, {1: _walker({f: float(f) for f in range(80)})})
    polygon = json.dumps([list(p) for p in ZONE])
    add = ["zones", "add", "--db", str(store), "--camera"]
    code, out, err = _reidkit([*add, "gate", "--name", "door", "--polygon", polygon], capsys, monkeypatch)
    assert code == 0 and "zone 'door' (4 points) saved" in out, err
    for args, words in (
        (["gate", "--name", "x", "--polygon", "[[0,0],[10,10],[10,0],[0,10]]"], "error: --polygon crosses itself"),
        (["nope", "--name", "x", "--polygon", polygon], "error: --camera 'nope': no such camera"),
        (["gate", "--name", " ", "--polygon", polygon], "error: --name ' ' must be 1 to 100"),
        (["gate", "--file", str(tmp_path / "none.json")], "error: --file"),
    ):
        code, out, err = _reidkit([*add, *args], capsys, monkeypatch)
        assert code == 2 and err.startswith(words) and err.count("\n") == 1, err
    zones_file = tmp_path / "zones.json"
    zones_file.write_text(json.dumps({"zones": [{"name": "left", "polygon": [[0, 0], [50, 0], [50, 50]]},
                                                {"name": "right", "polygon": [[100, 0], [150, 0], [150, 50]]}]}))
    code, out, err = _reidkit([*add, "gate", "--file", str(zones_file)], capsys, monkeypatch)
    assert code == 0 and "zone 'left' (3 points), zone 'right' (3 points) saved" in out, err
    zones_file.write_text(json.dumps([{"name": "bad", "polygon": [[0, 0], [500, 0], [50, 50]]}]))
    code, out, err = _reidkit([*add, "gate", "--file", str(zones_file)], capsys, monkeypatch)
    assert code == 2 and err.startswith("error: --file zones.json: zone 1 (bad) polygon point 2 (500, 0) lies outside")
    code, out, err = _reidkit(["zones", "remove", "--db", str(store), "--camera", "gate", "--name", "left"], capsys,
                              monkeypatch)
    assert code == 0 and [z.name for z in load_zones(store)] == ["door", "right"]
    code, out, err = _reidkit(["zones", "remove", "--db", str(tmp_path / "none"), "--camera", "gate", "--name", "x"],
                              capsys, monkeypatch)
    assert code == 2 and err.startswith("error: --db") and "no such store folder" in err
    presence, counts = tmp_path / "presence.csv", tmp_path / "counts.csv"
    code, out, err = _reidkit(["zones", "report", "--db", str(store), "--camera", "gate", "--bucket", "1m", "--csv",
                               str(presence), "--counts-csv", str(counts)], capsys, monkeypatch)
    assert code == 0, err
    assert "door" in out and "3.0" in out
    with presence.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["zone"] == "door"]
    assert tuple(rows[0]) == PRESENCE_COLUMNS and rows[0]["dwell_s"] == "3.0" and rows[0]["entries"] == "1"
    with counts.open() as handle:
        assert tuple(next(csv.DictReader(handle))) == COUNT_COLUMNS
    code, out, err = _reidkit(["zones", "report", "--db", str(store), "--json"], capsys, monkeypatch)
    door = [row for row in json.loads(out)["presence"] if row["zone"] == "door"]
    assert json.loads(out)["by"] == "track" and door[0]["dwell_s"] == 3.0
    code, out, err = _reidkit(["zones", "report", "--db", str(store), "--bucket", "0s"], capsys, monkeypatch)
    assert code == 2 and err.startswith("error: --bucket '0s' must be a length")
