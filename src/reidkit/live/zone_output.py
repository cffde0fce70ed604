"""A zone report as the command line and the API hand it out: one JSON object, or CSV tables with fixed columns.

Both read the same ``ZoneReport`` (``zone_report``), so ``reidkit zones report --json`` and ``GET .../report`` agree
to the byte on the numbers. The CSV tables are ``presence`` (one row per track or person and zone:
``PRESENCE_COLUMNS``) and ``counts`` (one row per zone and time bucket: ``COUNT_COLUMNS``); a track list is written
as ids joined by spaces.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Any

from reidkit.live.zone_report import COUNT_COLUMNS, PRESENCE_COLUMNS, ZoneReport

CSV_TABLES = ("presence", "counts")


def report_json(report: ZoneReport) -> dict[str, Any]:
    return {
        "by": report.by,
        "bucket_s": report.bucket_s,
        "dwell": "samples inside x every_n / fps: each sampled frame inside a zone counts for its sampling interval",
        "zones": [{**summary.zone.json(), "subjects": summary.subjects, "entries": summary.entries,
                   "exits": summary.exits, "dwell_s": summary.dwell_s} for summary in report.summaries],
        "presence": [{**asdict(row), "tracks": list(row.tracks)} for row in report.presence],
        "counts": [asdict(row) for row in report.counts],
        "notes": report.notes,
    }


def report_csv(report: ZoneReport, table: str) -> str:
    """Table ``table`` (``presence`` or ``counts``) of ``report`` as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table == "presence":
        writer.writerow(PRESENCE_COLUMNS)
        for row in report.presence:
            values = asdict(row) | {"tracks": " ".join(map(str, row.tracks))}
            writer.writerow([values[column] for column in PRESENCE_COLUMNS])
    else:
        writer.writerow(COUNT_COLUMNS)
        for count in report.counts:
            values = asdict(count)
            writer.writerow([values[column] for column in COUNT_COLUMNS])
    return out.getvalue()
