"""Distributed ingest (Ray) against the single-process ingest, on the same two videos: wall seconds and speed-up.

The two "videos" are two disjoint frame ranges of the shared vtest.avi (as the demo's two cameras), ingested

- single process: ``ingest_video`` for each, one after the other, exactly as two ``reidkit ingest`` runs (models
  loaded once, outside the timing, reported as set-up);
- Ray, 1 worker and 2 workers (each on a local Ray of that many CPUs): ``RayWorkers`` (start-up: Ray, worker
  processes, their models; reported separately) then ``ingest_many``, whole videos or ``--segment-seconds`` cuts.

Every run goes into a fresh temporary store; the crops and tracks each stored are printed so that runs can be seen to
do the same work (whole videos: identical stores). The speed-up is 1-worker seconds / 2-worker seconds, for the
ingest alone and with start-up.

    python benchmarks/bench_ingest_ray.py                         # 2 x 200 frames, every 2nd, imagenet model
    python benchmarks/bench_ingest_ray.py --frames 100 --segment-seconds 5

Prints a table and writes benchmarks/out/ingest_ray.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_summary  # noqa: E402

from reidkit.search.distributed_ingest import ClusterOptions, RayWorkers, VideoJob, WorkerSetup, ingest_many  # noqa: E402
from reidkit.search.ingest import IngestOptions, ingest_video  # noqa: E402
from reidkit.search.model_choice import (  # noqa: E402
    DEFAULT_CHECKPOINT,
    choose_detector,
    choose_model,
    detector_source,
    resolve_backend,
)
from reidkit.search.store import Store  # noqa: E402
from reidkit.video import probe_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"


@dataclass
class Row:
    run: str
    workers: int
    setup_seconds: float
    seconds: float
    frames: int
    crops: int
    tracks: int
    load_before: list[float]


def video_jobs(video: Path, frames: int, every: int) -> list[VideoJob]:
    info = probe_video(video)
    return [
        VideoJob(info, IngestOptions(camera, every_n=every, start_frame=start, end_frame=start + frames, progress=False))
        for camera, start in (("cam-a", 0), ("cam-b", frames))
    ]


def single_process(jobs: list[VideoJob], setup: WorkerSetup) -> Row:
    load = machine_summary()["load_average"]
    started = time.perf_counter()
    choice = choose_model(setup.model_source, None, batch_size=setup.batch_size, backend=setup.backend)
    detector = choose_detector(setup.detector, openvino_model=Path(setup.detector_model) if setup.detector_model else None)
    setup_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder), writable=True, create=True) as store:
        started = time.perf_counter()
        reports = [ingest_video(store, j.info, j.options, choice.extractor, detector, choice.source) for j in jobs]
        seconds = time.perf_counter() - started
    return Row("single process (ingest_video x2)", 1, round(setup_seconds, 1), round(seconds, 2),
               sum(r.frames for r in reports), sum(r.detections for r in reports), sum(r.tracks for r in reports),
               load)


def with_ray(jobs: list[VideoJob], setup: WorkerSetup, workers: int, segment_seconds: float | None) -> Row:
    load = machine_summary()["load_average"]
    with RayWorkers(setup, ClusterOptions(workers=workers)) as ray_workers:
        with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder), writable=True, create=True) as store:
            report = ingest_many(store, jobs, ray_workers, segment_seconds, progress=False)
    cut = f", {segment_seconds:g} s segments" if segment_seconds else ", whole videos"
    return Row(f"Ray, {workers} worker{'s' if workers > 1 else ''}{cut}", workers,
               round(ray_workers.start_seconds, 1), round(report.seconds, 2),
               sum(v.frames for v in report.videos), sum(v.detections for v in report.videos),
               sum(v.tracks for v in report.videos), load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=200, help="frames of the source per video (two videos)")
    parser.add_argument("--every", type=int, default=2, help="process every n-th frame")
    parser.add_argument("--segment-seconds", type=float, default=None, help="cut the videos for the Ray runs")
    parser.add_argument("--checkpoint", default=None, help="ReID checkpoint or imagenet (default: demo model, "
                        "else imagenet)")
    parser.add_argument("--embed-backend", default="auto", help="auto, torch or openvino (as reidkit ingest)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ingest_ray.json")
    args = parser.parse_args()
    checkpoint = args.checkpoint or (str(DEFAULT_CHECKPOINT.resolve()) if DEFAULT_CHECKPOINT.is_file() else "imagenet")
    detector, detector_model = detector_source(None)
    setup = WorkerSetup(checkpoint, detector, str(detector_model) if detector_model else None,
                        backend=resolve_backend(args.embed_backend, "cpu"))
    jobs = video_jobs(args.video, args.frames, args.every)

    before = machine_summary()
    rows = [single_process(jobs, setup)]
    print(f"done: {rows[-1].run}", flush=True)
    for workers in (1, 2):
        rows.append(with_ray(jobs, setup, workers, args.segment_seconds))
        print(f"done: {rows[-1].run}", flush=True)
    after = machine_summary()

    one, two = rows[1], rows[2]
    speedup = one.seconds / two.seconds
    speedup_total = (one.setup_seconds + one.seconds) / (two.setup_seconds + two.seconds)
    print(f"\n{args.video}: 2 videos x {args.frames} frames, every {args.every}; model {checkpoint}, detector "
          f"{detector}, embedding {setup.backend}")
    print(f"{'run':<40}{'start s':>9}{'ingest s':>10}{'frames':>8}{'crops':>7}{'tracks':>8}{'fps':>7}  load before")
    for r in rows:
        print(f"{r.run:<40}{r.setup_seconds:>9.1f}{r.seconds:>10.1f}{r.frames:>8}{r.crops:>7}{r.tracks:>8}"
              f"{r.frames / r.seconds:>7.1f}  {r.load_before}")
    print(f"speed-up 1 -> 2 Ray workers: {speedup:.2f}x ingest alone, {speedup_total:.2f}x with start-up; "
          f"2 Ray workers vs single process: {rows[0].seconds / two.seconds:.2f}x")
    print(f"load average before/after: {before['load_average']} / {after['load_average']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "video": str(args.video), "frames_per_video": args.frames, "every_n": args.every,
        "segment_seconds": args.segment_seconds, "checkpoint": checkpoint, "detector": detector,
        "embed_backend": setup.backend, "machine_before": before, "machine_after": after,
        "rows": [asdict(r) for r in rows], "speedup_1_to_2_workers": round(speedup, 3),
        "speedup_1_to_2_workers_with_startup": round(speedup_total, 3),
        "same_work": len({(r.frames, r.crops, r.tracks) for r in rows}) == 1 if not args.segment_seconds else None,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
