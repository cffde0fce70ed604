"""The watch list's threshold from data, and the time from a person's first frame to the alert on the page.

Footage: the shared video as two cameras, its halves (``cam-a``, ``cam-b``; 80 s of camera time), ingested with the
shipped model and the OpenVINO detector as ``reidkit demo-video`` does. Ground truth without labels: the walkers
followed across the cut by one tracker (``demos.video_demo.walkers_across_cut``) name their tracks on each side.

- False alerts, people NOT in the footage: every Market-1501 test identity (750 people, one query image each,
  embedded with the same model) is enrolled, and both cameras' tracks are played to ``live.alerts.AlertListener``
  as the live ingest reports them: a ``TrackUpdate`` per track per 1.5 s segment, its vector the track's vector as
  it stood then (so an early, partial track can alert as it would live). Alerts per camera-hour, and per
  camera-hour per enrolled person.
- Misses and wrong alerts, people IN the footage: every walker is enrolled from his longest camera-A track, and
  camera B is played the same way; a miss is a walker with no alert on one of his camera-B tracks, a wrong alert
  one on another walker's track.

Each threshold of a grid runs the real listener (with its cool-down). The default is the middle of the range of
thresholds with no false alert in either test that miss no more walkers than the best threshold does (a margin
both ways: the range is narrow, and another camera moves both edges).

Latency: a copy of the store gets the walkers enrolled and a real ``reidkit serve`` app (uvicorn on 127.0.0.1) with
a client following ``/alerts/stream``; camera B's first ten seconds after the cut are streamed through
``live.watcher.watch_cameras`` (a file played at its real rate, every frame); per alert, first frame -> alert stored
(``latency_s``) and first frame -> event received by the client (the page's side).

    python benchmarks/bench_watchlist.py [--shared ../shared] [--data-dir data] [--every 2] [--no-latency]

Prints the table and writes benchmarks/out/watchlist.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from reidkit.live.alerts import DEFAULT_THRESHOLD, AlertListener, alerts_db  # noqa: E402
from reidkit.live.events import TrackUpdate  # noqa: E402
from reidkit.live.watchlist import enrol  # noqa: E402
from reidkit.store.rows import normalise_rows  # noqa: E402

OUT = REPO / "benchmarks" / "out"
GRID = [round(0.5 + 0.025 * i, 3) for i in range(19)]  # 0.50 .. 0.95
SEGMENT_S = 1.5  # live.watcher.WatchOptions.commit_seconds
LATENCY_FRAMES = 100


def build_store(shared: Path, data_dir: Path, every: int) -> tuple[Path, Any, list[int], Any]:
    """The two-camera store (reused when already made with this model and ``every``), its walkers, video ids and the
    loaded models."""
    from reidkit.demos.video_demo import walkers_across_cut
    from reidkit.search.ingest import IngestOptions, ingest_video
    from reidkit.inference.model_choice import choose_model
    from reidkit.video.detector_choice import choose_detector
    from reidkit.store.writer import Store
    from reidkit.video import probe_video

    video = shared / "videos" / "vtest.avi"
    info = probe_video(video)
    cut = info.num_frames // 2
    choice = choose_model(None, None, backend="auto")
    detector = choose_detector(None, openvino_model=shared / "models" / "person-detection-retail-0013"
                               / "person-detection-retail-0013.xml")
    root = data_dir / f"bench-watchlist-store-every{every}"
    with Store.open(root, writable=True, create=True) as store:
        if store.model is not None and store.model.model_id != choice.extractor.model_id:
            raise SystemExit(f"{root} holds another model's features; delete it")
        ids = []
        for camera, first, end in (("cam-a", 0, cut), ("cam-b", cut, info.num_frames)):
            done = [v for v in store.videos() if v.camera == camera and v.status == "done"]
            if done:
                ids.append(done[0].id)
                continue
            options = IngestOptions(camera, datetime(2024, 5, 1, 9, 0, 0), every, first, end, progress=False)
            ids.append(ingest_video(store, info, options, choice.extractor, detector, choice.source).video_id)
        walkers = walkers_across_cut(store, ids[0], ids[1], detector)
    return root, walkers, ids, (choice, detector, cut)


def segment_updates(root: Path, video_id: int) -> list[list[TrackUpdate]]:
    """A video's tracks as the live ingest reports them: per segment of ``SEGMENT_S`` s, each track that grew in it,
    its vector the store's track vector as it stood then (its crops' features so far, weighted by quality as
    ``Store`` sums them, normalised)."""
    from reidkit.store.reader import StoreReader

    with StoreReader.open(root) as store:
        video = store.video(video_id)
        rows = store.db.execute("SELECT id, track_id, frame_index, quality FROM detections WHERE video_id = ? AND "
                                "track_id IS NOT NULL ORDER BY frame_index, id", (video_id,)).fetchall()
        ids, features = store.detection_features(np.array([r[0] for r in rows], dtype=np.int64))
    feature_of = {int(i): f for i, f in zip(ids.tolist(), features, strict=True)}
    camera, fps, start = video.camera, video.fps, video.start_frame
    sums: dict[int, np.ndarray] = {}
    first: dict[int, float] = {}
    counts: dict[int, int] = {}
    segments: list[list[TrackUpdate]] = []
    grown: dict[int, tuple[float, int]] = {}
    segment = 0
    for detection_id, track_id, frame, quality in rows:
        at = (frame - start) / fps
        while at >= (segment + 1) * SEGMENT_S:
            segments.append(_updates(camera, video_id, grown, sums, first, counts))
            grown, segment = {}, segment + 1
        sums[track_id] = sums.get(track_id, 0) + feature_of[detection_id] * np.float32(max(quality, 1e-3))
        first.setdefault(track_id, at)
        counts[track_id] = counts.get(track_id, 0) + 1
        grown[track_id] = (at, detection_id)
    segments.append(_updates(camera, video_id, grown, sums, first, counts))
    return segments


def _updates(camera: str, video_id: int, grown: dict[int, tuple[float, int]], sums: dict[int, np.ndarray],
             first: dict[int, float], counts: dict[int, int]) -> list[TrackUpdate]:
    return [TrackUpdate(track, camera, video_id, first[track], last, counts[track], normalise_rows(sums[track]),
                        detection, 0.0) for track, (last, detection) in sorted(grown.items())]


def stranger_features(shared: Path, data_dir: Path, extractor: Any) -> np.ndarray:
    """One query image of every Market-1501 test identity, embedded."""
    from reidkit.data import load_dataset, prepare_shared_market1501
    from reidkit.search.query import load_query_image

    dataset = load_dataset("market1501", prepare_shared_market1501(shared, data_dir))
    chosen: dict[int, Path] = {}
    for record in dataset.query:
        chosen.setdefault(record.pid, record.path)
    images = [load_query_image(path) for _, path in sorted(chosen.items())]
    return normalise_rows(np.concatenate([extractor(images[i:i + 64]) for i in range(0, len(images), 64)]))


def play(folder: Path, model_id: str, threshold: float, segments: list[list[list[TrackUpdate]]]) -> list[Any]:
    """The alerts the listener raises at ``threshold`` for the cameras' segments (played side by side)."""
    with closing(alerts_db(folder)) as connection:
        connection.execute("DELETE FROM alerts")
    listener = AlertListener(folder, model_id, threshold=threshold)
    for step in range(max(len(s) for s in segments)):
        listener.on_tracks([u for camera in segments if step < len(camera) for u in camera[step]])
    listener.close()
    with closing(alerts_db(folder)) as connection:
        return connection.execute("SELECT person_id, track_id FROM alerts").fetchall()


def threshold_table(root: Path, walkers: list[Any], video_ids: list[int], strangers: np.ndarray, model_id: str
                    ) -> tuple[list[dict[str, Any]], float]:
    from reidkit.store.reader import StoreReader

    cameras = [segment_updates(root, video_id) for video_id in video_ids]
    with StoreReader.open(root) as store:
        hours = sum((v.end_frame - v.start_frame) / v.fps for v in map(store.video, video_ids)) / 3600
        walker_vectors = [store.track_vectors(np.array([max(w.tracks_a, key=w.tracks_a.get)]))[1][0] for w in walkers]
    scratch = Path(tempfile.mkdtemp(prefix="bench-watchlist-"))
    (scratch / "strangers").mkdir()
    (scratch / "walkers").mkdir()
    for n, vector in enumerate(strangers):
        enrol(scratch / "strangers", f"market {n}", "", vector, model_id, "market1501 query")
    owner = {}
    for n, (walker, vector) in enumerate(zip(walkers, walker_vectors, strict=True)):
        person = enrol(scratch / "walkers", f"walker {n}", "", vector, model_id, "cam-a track")
        owner[person.id] = set(walker.tracks_b)
    everyone_b = set().union(*owner.values())
    rows = []
    for threshold in GRID:
        false = play(scratch / "strangers", model_id, threshold, cameras)
        found = play(scratch / "walkers", model_id, threshold, cameras[1:])
        right = {p for p, t in found if t in owner[p]}
        rows.append({
            "threshold": threshold, "stranger_alerts": len(false),
            "false_per_camera_hour": round(len(false) / hours, 1),
            "false_per_camera_hour_per_person": round(len(false) / hours / len(strangers), 3),
            "walkers": len(owner), "walkers_alerted": len(right), "misses": len(owner) - len(right),
            "wrong_walker_alerts": sum(1 for p, t in found if t in everyone_b and t not in owner[p]),
            "alerts_on_unattributed_tracks": sum(1 for p, t in found if t not in everyone_b),
        })
    shutil.rmtree(scratch)
    fewest_misses = min(row["misses"] for row in rows)
    clean = [row for row in rows if row["stranger_alerts"] == 0 and row["wrong_walker_alerts"] == 0
             and row["misses"] == fewest_misses]
    chosen = round((clean[0]["threshold"] + clean[-1]["threshold"]) / 2, 3) if clean else DEFAULT_THRESHOLD
    return rows, chosen


def measure_latency(root: Path, walkers: list[Any], models: tuple[Any, Any, int], shared: Path, threshold: float
                    ) -> dict[str, Any]:
    """First frame -> alert stored, and -> the event at a client following the stream, with the walkers enrolled."""
    import httpx

    from reidkit.live.sources import CameraSource
    from reidkit.live.watcher import WatchModels, WatchOptions, watch_cameras
    from reidkit.service.access import Role, create_token
    from reidkit.store.reader import StoreReader

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import cut_clip

    choice, detector, cut = models
    work = Path(tempfile.mkdtemp(prefix="bench-watchlist-latency-"))
    store_copy = Path(shutil.copytree(root, work / "store"))
    clip = cut_clip(shared / "videos" / "vtest.avi", work / "cam-b.mp4", cut, LATENCY_FRAMES)
    model_id = choice.extractor.model_id
    with StoreReader.open(store_copy) as store:
        for n, walker in enumerate(walkers):
            vector = store.track_vectors(np.array([max(walker.tracks_a, key=walker.tracks_a.get)]))[1][0]
            enrol(store_copy, f"walker {n}", "", vector, model_id, "cam-a track")
    url, server = _serve(store_copy)
    headers = {"Authorization": f"Bearer {create_token(store_copy, Role.viewer, 'bench')[1]}"}
    received: dict[int, float] = {}

    def follow() -> None:
        with httpx.stream("GET", f"{url}/api/v1/alerts/stream", headers=headers, timeout=None) as stream:
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    received[int(line[4:])] = time.time()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(1.0)
    listener = AlertListener(store_copy, model_id, threshold=threshold)
    report = watch_cameras(store_copy, [CameraSource("cam-b-live", str(clip))], WatchOptions(), listeners=[listener],
                           models=WatchModels(detector, choice.extractor, choice.source))
    listener.close()
    time.sleep(1.0)
    server.should_exit = True
    with closing(alerts_db(store_copy)) as connection:
        rows = connection.execute("SELECT id, latency_s, first_frame_received FROM alerts ORDER BY id").fetchall()
    stored = [float(r[1]) for r in rows]
    paged = [received[int(r[0])] - float(r[2]) for r in rows if int(r[0]) in received]
    shutil.rmtree(work)
    camera = report.cameras[0]
    return {"alerts": len(rows), "frames": camera.frames, "frames_dropped": camera.frames_dropped,
            "to_stored_s": [round(v, 3) for v in stored], "to_page_s": [round(v, 3) for v in paged],
            "p50_stored_s": round(float(np.median(stored)), 3) if stored else None,
            "p50_page_s": round(float(np.median(paged)), 3) if paged else None}


def _serve(root: Path) -> tuple[str, Any]:
    """``reidkit serve``'s app on 127.0.0.1 (a free port) in a thread."""
    import socket

    import uvicorn

    from reidkit.service.app import create_app

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(root), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{listener.getsockname()[1]}", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=REPO / "data")
    parser.add_argument("--every", type=int, default=2, help="ingest every n-th frame of the footage")
    parser.add_argument("--no-latency", action="store_true", help="only the threshold table")
    args = parser.parse_args()
    logging.getLogger("reidkit.live.alerts").setLevel(logging.ERROR)  # an alert's line per alert, thousands here
    started = time.monotonic()
    root, walkers, video_ids, models = build_store(args.shared, args.data_dir, args.every)
    choice = models[0]
    strangers = stranger_features(args.shared, args.data_dir, choice.extractor)
    rows, chosen = threshold_table(root, walkers, video_ids, strangers, choice.extractor.model_id)
    print(f"{len(strangers)} strangers enrolled, {len(walkers)} walkers across the cut; model {choice.source}")
    print(f"{'thr':>6} {'false':>6} {'/cam-h':>8} {'/cam-h/p':>9} {'hit':>5} {'miss':>5} {'wrong':>6} {'unattr':>7}")
    for row in rows:
        print(f"{row['threshold']:>6.3f} {row['stranger_alerts']:>6} {row['false_per_camera_hour']:>8} "
              f"{row['false_per_camera_hour_per_person']:>9} {row['walkers_alerted']:>5} {row['misses']:>5} "
              f"{row['wrong_walker_alerts']:>6} {row['alerts_on_unattributed_tracks']:>7}")
    print(f"chosen threshold: {chosen}")
    result: dict[str, Any] = {"command": " ".join(sys.argv), "date": datetime.now().isoformat(timespec="seconds"), "machine": os.uname().nodename,
                              "cpus": os.cpu_count(), "load_average": os.getloadavg(), "model": choice.source,
                              "every": args.every, "strangers": len(strangers), "walkers": len(walkers),
                              "rows": rows, "chosen_threshold": chosen}
    if not args.no_latency:
        result["latency"] = measure_latency(root, walkers, models, args.shared, chosen)
        print(json.dumps(result["latency"]))
    result["seconds"] = round(time.monotonic() - started, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "watchlist.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT / 'watchlist.json'} in {result['seconds']} s")


if __name__ == "__main__":
    main()
