"""People linked online across cameras (reidkit.live.online_people), measured on the shared video's two halves.

    python benchmarks/bench_online_people.py --shared ../shared [--every 4]

The store of `reidkit demo-video` (the shared video ingested as two cameras, its halves, with the shipped model;
built or reused under --data-dir) is replayed as a live watcher would report it: every 2 s of footage, each track
seen in that window arrives as a ``TrackUpdate`` whose vector pools only the crops seen so far. Ground truth comes
without labels, as in the demo: a tracker run across the cut names each walker's tracks on both sides
(``walkers_across_cut``). Reported per linking threshold (fixed values, and the footage's own: the 99th percentile
of known-different pairs): walkers whose two sides end up as one person (found), pairs of different walkers merged
into one person (false merges), people made, and the offline clustering's (`reidkit cluster --db`) figures beside.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEGMENT_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--thresholds", default="0.6,0.7,0.75,0.8,0.85,0.9")
    args = parser.parse_args()
    record = measure(args.shared, args.data_dir, args.every, [float(t) for t in args.thresholds.split(",")])
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "online_people.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


def measure(shared: Path, data_dir: Path, every: int, thresholds: list[float]) -> dict[str, Any]:
    from reidkit.demos.video_demo import DETECTOR_MODEL, run_demo_video, walkers_across_cut
    from reidkit.video.detector_choice import choose_detector
    from reidkit.search.people import memberships
    from reidkit.store.writer import Store

    with tempfile.TemporaryDirectory() as scratch:
        demo = run_demo_video(shared, data_dir, Path(scratch), every, None, None, echo=lambda _: None)
    with Store.open(demo.store_root, writable=True) as store:
        video_a, video_b = sorted(v.id for v in store.videos())[:2]
        detector = choose_detector(None, openvino_model=shared / DETECTOR_MODEL)
        walkers = walkers_across_cut(store, video_a, video_b, detector)
        batches = live_batches(store)
        offline = {t: m.person_id for t, m in memberships(store, store.track_ids().tolist()).items()}
    truth = [(set(w.tracks_a), set(w.tracks_b)) for w in walkers]
    rows = {f"{t:.2f}": replay(batches, truth, offline, t) for t in thresholds}
    for quantile in (0.9, 0.95, 0.99):
        rows[f"footage's own, quantile {quantile}"] = replay(batches, truth, offline, None, quantile)
    return {"every_n": every, "tracks": len({u.track_id for b in batches for u in b}), "walkers": len(truth),
            "offline_people": demo.summary["people"], "segment_s": SEGMENT_S, "rows": rows}


def live_batches(store: Any) -> list[list[Any]]:
    """The store's tracks as a watcher's listeners would see them: per ``SEGMENT_S`` of wall-clock time, every
    track with a crop in that window, its vector pooled (quality-weighted) over its crops up to the window's end."""
    from reidkit.live.events import TrackUpdate
    from reidkit.store.rows import normalise_rows

    ids, owners, features = store.track_detection_features(store.track_ids())
    rows = store.detections(ids.tolist())
    start = {v.id: (v.start_time.timestamp() if v.start_time else 0.0, v.camera) for v in store.videos()}
    epoch = np.array([start[rows[i].video_id][0] + rows[i].time_s for i in ids.tolist()])
    quality = np.array([rows[i].quality for i in ids.tolist()])
    order = np.argsort(epoch, kind="stable")
    batches: list[list[Any]] = []
    first_seen: dict[int, float] = {}
    sums: dict[int, np.ndarray] = {}
    best: dict[int, tuple[float, int]] = {}
    edge, cursor = float(epoch[order[0]]) + SEGMENT_S, 0
    while cursor < len(order):
        touched: set[int] = set()
        while cursor < len(order) and epoch[order[cursor]] < edge:
            i = order[cursor]
            track = int(owners[i])
            first_seen.setdefault(track, float(epoch[i]))
            sums[track] = sums.get(track, 0) + quality[i] * features[i]
            best[track] = max(best.get(track, (-1.0, 0)), (float(quality[i]), int(ids[i])))
            touched.add(track)
            cursor += 1
        batch = []
        for track in sorted(touched):
            detection = rows[best[track][1]]
            batch.append(TrackUpdate(track, start[detection.video_id][1], detection.video_id, first_seen[track],
                                     min(edge, float(epoch[order[cursor - 1]])), 0,
                                     normalise_rows(sums[track][None, :])[0], best[track][1], first_seen[track]))
        if batch:
            batches.append(batch)
        edge += SEGMENT_S
    return batches


def replay(batches: list[list[Any]], truth: list[tuple[set[int], set[int]]], offline: dict[int, int],
           threshold: float | None, quantile: float | None = None) -> dict:
    """Link the batches into a scratch live database with a fixed threshold (None: the footage's own, at
    ``quantile`` of its known-different pairs)."""
    from reidkit.live import online_people

    saved = online_people.PRIOR_THRESHOLD, online_people.MIN_EVIDENCE_PAIRS, online_people.LINK_QUANTILE
    if threshold is not None:  # a fixed threshold: the prior, never replaced by evidence
        online_people.PRIOR_THRESHOLD, online_people.MIN_EVIDENCE_PAIRS = threshold, 10**9
    if quantile is not None:
        online_people.LINK_QUANTILE = quantile
    try:
        with tempfile.TemporaryDirectory() as scratch:
            linker = online_people.OnlinePeople(Path(scratch))
            thresholds = [link.threshold for batch in batches for link in linker.link(batch)]
            person = linker.recent_links()
            linker.close()
    finally:
        online_people.PRIOR_THRESHOLD, online_people.MIN_EVIDENCE_PAIRS, online_people.LINK_QUANTILE = saved
    people_of = [({person[t] for t in a}, {person[t] for t in b}) for a, b in truth]
    found = sum(bool(a & b) for a, b in people_of)
    everyone = [a | b for a, b in people_of]
    merged = sum(bool(everyone[i] & everyone[j]) for i in range(len(everyone)) for j in range(i + 1, len(everyone)))
    agree = pairwise_agreement(person, offline)
    return {**agree, "threshold_last": round(thresholds[-1], 4), "threshold_median": round(float(np.median(thresholds)), 4),
            "people": len(set(person.values())),
            "walkers_found": found, "walker_pairs_merged": merged}


def pairwise_agreement(online: dict[int, int], offline: dict[int, int]) -> dict[str, float]:
    """Pairs of tracks put together online that the offline clustering also puts together (precision), and the
    offline pairs found online (recall): agreement with `reidkit cluster --db`, which sees all the footage at once."""
    tracks = sorted(set(online) & set(offline))
    a = np.array([online[t] for t in tracks])
    b = np.array([offline[t] for t in tracks])
    same_online = a[:, None] == a[None, :]
    same_offline = b[:, None] == b[None, :]
    upper = np.triu(np.ones_like(same_online), 1)
    both = int((same_online & same_offline & upper).sum())
    return {"offline_precision": round(both / max(int((same_online & upper).sum()), 1), 3),
            "offline_recall": round(both / max(int((same_offline & upper).sum()), 1), 3)}


if __name__ == "__main__":
    main()
