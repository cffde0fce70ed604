"""Who was in which zone, for how long, and how many were there over time: read from the store's committed sightings.

A person's position is the foot point of their box (bottom centre: ``((x0 + x1) / 2, y1)``), tested against each
zone of the box's camera (``zones.points_inside``: on the outline counts as inside).

**Dwell, defined exactly.** The sampled frames are the truth. A track is observed at frames f_1 < f_2 < ..., spaced
by its video's ``every_n`` (more where the detector missed it); each observed sample whose foot point is inside a zone
counts for one sampling interval, ``every_n / fps`` seconds. So a zone's dwell is (samples inside) x (interval): a
track that walks through a zone at ``every_n = 1`` has a dwell equal to its frames inside divided by the frame rate,
and at ``every_n = n`` it is within one sampling interval of that. Frames not sampled, and frames where the detector
missed the person, count for nothing: nothing is interpolated.

**Entries and exits** are the changes between consecutive samples: outside -> inside is an entry, inside -> outside
an exit. A track whose first sample is inside counts one entry there (it appeared inside); one whose last sample is
inside has no exit (it was last seen inside).

**Per track or per person.** ``by="track"`` reports each store track; ``by="person"`` each person of the store's
clustering (``reidkit cluster --db``, ``search.people``), with the tracks clustering did not place reported as
tracks; ``"auto"`` takes people when the store has been clustered. A person's tracks in one video that overlap or
follow each other within one sampling interval are read as one walk: their samples are merged frame by frame (a
frame inside for any of them is inside once, so two tracks of one person never double its dwell), and a gap in
which none of its tracks was alive separates two walks (leaving and coming back is an exit and an entry).

**Counts over time** (``bucket_s``): per zone and time bucket, the distinct tracks or people with a sample inside,
the entries and exits that happened in it, and the dwell inside it. Buckets are wall-clock when the video has a start
time (``--start-time``; live sessions always do) and seconds into the video otherwise; empty buckets between the
first and last sample are listed with zeros so that a chart of them has no holes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from reidkit.errors import ConfigError
from reidkit.live.zones import Zone, points_inside
from reidkit.search.people import clustering, memberships
from reidkit.search.search import CLI_OPTIONS, check_search_options
from reidkit.store.filters import SearchFilters
from reidkit.store.reader import StoreReader

MAX_BUCKETS = 100_000
BY_CHOICES = ("auto", "track", "person")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Presence:
    """One track's or person's time in one zone."""

    camera: str
    zone: str
    subject: str               # "track" or "person"
    subject_id: int
    tracks: tuple[int, ...]    # the store tracks it is made of
    samples_inside: int
    dwell_s: float             # samples_inside x every_n / fps (summed over videos of different intervals)
    entries: int
    exits: int
    first_inside: str | None   # ISO 8601 (UTC) where the video has a start time, else "video V +S s"
    last_inside: str | None


@dataclass(frozen=True)
class ZoneCount:
    """One zone in one time bucket."""

    camera: str
    zone: str
    bucket_start: str          # ISO 8601 (UTC), or "video V +S s" for a video without a start time
    bucket_s: float
    present: int               # distinct tracks / people with a sample inside during the bucket
    entries: int
    exits: int
    dwell_s: float


@dataclass(frozen=True)
class ZoneSummary:
    zone: Zone
    subjects: int
    entries: int
    exits: int
    dwell_s: float


@dataclass
class ZoneReport:
    by: str                    # what a subject is: "track" or "person"
    bucket_s: float
    summaries: list[ZoneSummary]
    presence: list[Presence]
    counts: list[ZoneCount]
    notes: list[str] = field(default_factory=list)


PRESENCE_COLUMNS = ("camera", "zone", "subject", "subject_id", "tracks", "samples_inside", "dwell_s", "entries",
                    "exits", "first_inside", "last_inside")
COUNT_COLUMNS = ("camera", "zone", "bucket_start", "bucket_s", "present", "entries", "exits", "dwell_s")


def parse_bucket(text: str, option: str = "--bucket") -> float:
    """A bucket length such as ``30s``, ``1m``, ``2h`` or ``1d`` (a bare number is seconds), in seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 1 <= seconds <= 7 * 86400):
        raise ConfigError(f"{option} {text!r} must be a length from 1s to 7d, e.g. 30s, 1m, 15m, 1h")
    return seconds


@dataclass
class _Samples:
    """One camera's committed sightings in the time filter, row-aligned (ordered by video, track, frame)."""

    track: np.ndarray
    video: np.ndarray
    frame: np.ndarray
    time_s: np.ndarray
    start_epoch: np.ndarray    # the video's start (NaN: no start time)
    feet: np.ndarray           # (N, 2) foot points
    every_n: dict[int, int]    # per video
    interval: dict[int, float]  # per video: every_n / fps seconds


def _read_samples(store: StoreReader, camera: str, filters: SearchFilters) -> _Samples:
    sql = ("SELECT d.track_id, d.video_id, d.frame_index, d.time_s, (d.x0 + d.x1) / 2, d.y1, v.every_n, v.fps, "
           "v.start_epoch FROM detections d JOIN videos v ON v.id = d.video_id JOIN cameras c ON c.id = v.camera_id "
           "WHERE c.name = ?")
    params: list[object] = [camera]
    if filters.after is not None:  # NULL start_epoch (no start time) fails both: such videos have no wall clock
        sql, params = sql + " AND v.start_epoch + d.time_s >= ?", [*params, filters.after_epoch]
    if filters.before is not None:
        sql, params = sql + " AND v.start_epoch + d.time_s <= ?", [*params, filters.before_epoch]
    rows = store.db.execute(sql + " ORDER BY d.video_id, d.track_id, d.frame_index", params).fetchall()
    table = np.array([row[:6] for row in rows], dtype=np.float64).reshape(-1, 6)
    every_n = {int(row[1]): int(row[6]) for row in rows}
    interval = {int(row[1]): (row[6] / row[7] if row[7] and row[7] > 0 else 0.0) for row in rows}
    start = np.array([math.nan if row[8] is None else float(row[8]) for row in rows], dtype=np.float64)
    return _Samples(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.int64),
                    table[:, 3], start, table[:, 4:6], every_n, interval)


def _walks(samples: _Samples, subject_of: dict[int, tuple[str, int]]) -> dict[tuple[str, int, int, int], np.ndarray]:
    """Row indices of each walk, keyed (subject kind, subject id, video, walk number): a track alone, or a person's
    tracks in one video chained while one starts within a sampling interval of the others' end."""
    spans: dict[tuple[str, int, int], list[tuple[int, int, int]]] = defaultdict(list)
    rows_of: dict[int, np.ndarray] = {}
    if len(samples.track):
        bounds = np.flatnonzero(np.diff(samples.track) != 0) + 1
        for part in np.split(np.arange(len(samples.track)), bounds):
            track, video = int(samples.track[part[0]]), int(samples.video[part[0]])
            rows_of[track] = part
            kind, subject_id = subject_of.get(track, ("track", track))
            spans[(kind, subject_id, video)].append((int(samples.frame[part[0]]), int(samples.frame[part[-1]]), track))
    walks: dict[tuple[str, int, int, int], np.ndarray] = {}
    for (kind, subject_id, video), tracks in spans.items():
        tracks.sort()
        number, members, reach = 0, [rows_of[tracks[0][2]]], tracks[0][1]
        for first, last, track in tracks[1:]:
            if first > reach + samples.every_n[video]:  # none of its tracks alive in between: a new walk
                walks[(kind, subject_id, video, number)] = np.concatenate(members)
                number, members = number + 1, []
            members.append(rows_of[track])
            reach = last if not members[:-1] else max(reach, last)
        walks[(kind, subject_id, video, number)] = np.concatenate(members)
    return walks


@dataclass
class _PresenceSum:
    tracks: set[int]
    samples: int = 0
    dwell_s: float = 0.0
    entries: int = 0
    exits: int = 0
    first: tuple[bool, float, str] = (True, math.inf, "")   # (untimed, moment, text): wall-clock times sort first
    last: tuple[bool, float, str] = (False, -math.inf, "")


@dataclass
class _BucketSum:
    present: set[tuple[str, int]] = field(default_factory=set)
    entries: int = 0
    exits: int = 0
    dwell_s: float = 0.0


class _Tally:
    """Sums over walks: per (zone, subject) presence and per (zone, clock, bucket) counts."""

    def __init__(self, camera: str, zones: list[Zone], bucket_s: float, bucket_field: str) -> None:
        self.camera, self.zones, self.bucket_s, self.bucket_field = camera, zones, bucket_s, bucket_field
        self.presence: dict[tuple[int, str, int], _PresenceSum] = {}
        self.buckets: dict[tuple[int, int | None, int], _BucketSum] = defaultdict(_BucketSum)
        self.extent: dict[int | None, tuple[int, int]] = {}  # clock (None: wall) -> first and last bucket number

    def add_walk(self, key: tuple[str, int, int, int], samples: _Samples, rows: np.ndarray,
                 inside_rows: np.ndarray) -> None:
        """One walk: its samples merged frame by frame, then its transitions per zone (module docstring)."""
        kind, subject_id, video, _ = key
        frames, first_row, inverse = np.unique(samples.frame[rows], return_index=True, return_inverse=True)
        inside = np.zeros((len(frames), len(self.zones)), dtype=bool)
        np.logical_or.at(inside, inverse, inside_rows[rows])
        start = samples.start_epoch[rows[0]]
        clock = video if math.isnan(start) else None
        moments = samples.time_s[rows][first_row] + (0.0 if clock is not None else start)
        numbers = np.floor(moments / self.bucket_s).astype(np.int64)
        seen = self.extent.get(clock, (int(numbers[0]), int(numbers[-1])))
        self.extent[clock] = (min(seen[0], int(numbers[0])), max(seen[1], int(numbers[-1])))
        interval = samples.interval[video]
        for z in range(len(self.zones)):
            now = inside[:, z]
            if not now.any():
                continue
            entries = now & ~np.r_[False, now[:-1]]
            exit_at = np.r_[False, now[:-1] & ~now[1:]]  # the first sample outside: where the exit was seen
            total = self.presence.setdefault((z, kind, subject_id), _PresenceSum(set()))
            total.tracks |= {int(t) for t in samples.track[rows]}
            total.samples += int(now.sum())
            total.dwell_s += int(now.sum()) * interval
            total.entries += int(entries.sum())
            total.exits += int(exit_at.sum())
            first, last = float(moments[now][0]), float(moments[now][-1])
            total.first = min(total.first, (clock is not None, first, _moment(first, clock)))
            total.last = max(total.last, (clock is not None, last, _moment(last, clock)))
            for number in np.unique(numbers[now | exit_at]):
                in_bucket = numbers == number
                cell = self.buckets[(z, clock, int(number))]
                if (now & in_bucket).any():
                    cell.present.add((kind, subject_id))
                cell.entries += int((entries & in_bucket).sum())
                cell.exits += int((exit_at & in_bucket).sum())
                cell.dwell_s += int((now & in_bucket).sum()) * interval

    def presence_rows(self) -> list[Presence]:
        return [
            Presence(self.camera, self.zones[z].name, kind, subject_id, tuple(sorted(total.tracks)), total.samples,
                     round(total.dwell_s, 6), total.entries, total.exits, total.first[2], total.last[2])
            for (z, kind, subject_id), total in sorted(self.presence.items())
        ]

    def count_rows(self) -> list[ZoneCount]:
        """Every bucket from each clock's first to its last sample, per zone (zeros where nobody was inside)."""
        total = sum(last - first + 1 for first, last in self.extent.values()) * len(self.zones)
        if total > MAX_BUCKETS:
            raise ConfigError(f"{self.bucket_field} {self.bucket_s:g}s makes {total} buckets over this time; the "
                              f"limit is {MAX_BUCKETS}: take longer buckets or a shorter time span")
        clocks = sorted(self.extent.items(), key=lambda item: (item[0] is not None, item[0] or 0))
        rows = []
        for z, zone in enumerate(self.zones):
            for clock, (first, last) in clocks:
                for number in range(first, last + 1):
                    cell = self.buckets.get((z, clock, number), _BucketSum())
                    rows.append(ZoneCount(self.camera, zone.name, _moment(number * self.bucket_s, clock),
                                          self.bucket_s, len(cell.present), cell.entries, cell.exits,
                                          round(cell.dwell_s, 6)))
        return rows


def _moment(seconds: float, clock: int | None) -> str:
    """Wall-clock ISO time (clock None) or ``video V +S s`` (seconds into video ``clock``)."""
    if clock is None:
        return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="milliseconds")
    return f"video {clock} +{float(seconds):.3f}s"


def zone_report(store: StoreReader, zones: list[Zone], filters: SearchFilters = SearchFilters(),
                bucket_s: float = 60.0, by: str = "auto", names: dict[str, str] = CLI_OPTIONS) -> ZoneReport:
    """Presence and counts for ``zones`` (of the cameras ``filters`` names, or of every camera they are on) from the
    store's committed sightings within ``filters``' time span. ``names`` name the options in refusals."""
    drawn_on = {zone.camera for zone in zones}  # a camera with zones but no footage yet reports nothing, not an error
    check_search_options(store, replace(filters, cameras=tuple(c for c in filters.cameras if c not in drawn_on)),
                         names=names)
    if by not in BY_CHOICES:
        raise ConfigError(f"{names.get('by', '--by')} {by!r}: use {', '.join(BY_CHOICES)}")
    clustered = clustering(store) is not None
    if by == "person" and not clustered:
        raise ConfigError(f"{names.get('by', '--by')} person: store {store.root} has not been clustered; run "
                          "`reidkit cluster --db` first, or report by track")
    chosen = "person" if by == "person" or (by == "auto" and clustered) else "track"
    cameras = filters.cameras or tuple(sorted({zone.camera for zone in zones}))
    report = ZoneReport(chosen, bucket_s, [], [], [])
    for camera in cameras:
        mine = [zone for zone in zones if zone.camera == camera]
        if not mine:
            report.notes.append(f"camera {camera!r} has no zones")
            continue
        samples = _read_samples(store, camera, filters)
        inside = np.stack([points_inside(samples.feet, zone.polygon) for zone in mine], axis=1)
        subject_of = {}
        if chosen == "person":
            found = memberships(store, np.unique(samples.track).tolist())
            subject_of = {track: ("person", member.person_id) for track, member in found.items()}
        tally = _Tally(camera, mine, bucket_s, names.get("bucket", "--bucket"))
        for key, rows in sorted(_walks(samples, subject_of).items(), key=lambda item: item[1][0]):
            tally.add_walk(key, samples, rows, inside)
        presence = tally.presence_rows()
        report.presence += presence
        report.counts += tally.count_rows()
        report.summaries += [_summary(zone, [row for row in presence if row.zone == zone.name]) for zone in mine]
    if (filters.after or filters.before) and store.db.execute(
            "SELECT COUNT(*) FROM videos WHERE start_time IS NULL").fetchone()[0]:
        report.notes.append("videos ingested without --start-time cannot match --after/--before and were left out")
    return report


def _summary(zone: Zone, rows: list[Presence]) -> ZoneSummary:
    return ZoneSummary(zone, len(rows), sum(r.entries for r in rows), sum(r.exits for r in rows),
                       round(sum(r.dwell_s for r in rows), 6))
