"""Distributed ingest (Ray) against the single-process ingest, on the same two videos: wall seconds and speed-up.

The two "videos" are two disjoint frame ranges of the shared vtest.avi (as the demo's two cameras), ingested

- single process: ``ingest_video`` for each, one after the other, exactly as two ``reidkit ingest`` runs (models
  loaded once, outside the timing, reported as start-up);
- Ray, 1 worker and 2 workers: ``RayWorkers`` (start-up: worker processes and their models, reported separately)
  then ``ingest_many``, whole videos or ``--segment-seconds`` cuts.

One local Ray (3 CPUs: the 1-worker and the 2-worker pools live side by side, idle when not used) serves both Ray
runs, so that the three runs can alternate, ``--repeats`` rounds of them: on a shared machine whose load changes by
the minute, each run then sees the same mix of quiet and busy moments. The table gives each run's best and median
ingest seconds; the speed-up is 1-worker / 2-worker seconds (best and median). Every run goes into a fresh
temporary store; crops and tracks are printed so that runs can be seen to do the same work (whole videos:
identical stores).

    python benchmarks/bench_ingest_ray.py                         # 2 x 120 frames, every 2nd, 3 rounds
    python benchmarks/bench_ingest_ray.py --frames 200 --segment-seconds 5 --repeats 2

Prints a table and writes benchmarks/out/ingest_ray.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_summary  # noqa: E402

from reidkit.search.distributed_ingest import (  # noqa: E402
    ClusterOptions,
    RayWorkers,
    VideoJob,
    WorkerSetup,
    connect,
    ingest_many,
)
from reidkit.search.ingest import IngestOptions, ingest_video  # noqa: E402
from reidkit.models.zoo import DEFAULT_MODEL  # noqa: E402
from reidkit.inference.model_choice import choose_model, resolve_backend  # noqa: E402
from reidkit.video.detector_choice import choose_detector, detector_source  # noqa: E402
from reidkit.store.writer import Store  # noqa: E402
from reidkit.video import probe_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"


@dataclass
class Row:
    run: str
    workers: int
    start_seconds: float
    seconds: list[float]  # ingest wall seconds, one per round
    frames: int
    crops: int
    tracks: int
    load_before: list[list[float]]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def video_jobs(video: Path, frames: int, every: int) -> list[VideoJob]:
    info = probe_video(video)
    return [
        VideoJob(info, IngestOptions(camera, every_n=every, start_frame=start, end_frame=start + frames, progress=False))
        for camera, start in (("cam-a", 0), ("cam-b", frames))
    ]


class SingleProcess:
    """Two ``ingest_video`` calls in this process, models loaded once."""

    def __init__(self, setup: WorkerSetup) -> None:
        started = time.perf_counter()
        self.choice = choose_model(setup.model_source, None, batch_size=setup.batch_size, backend=setup.backend)
        model = Path(setup.detector_model) if setup.detector_model else None
        self.detector = choose_detector(setup.detector, openvino_model=model)
        self.row = Row("single process (ingest_video x2)", 1, time.perf_counter() - started, [], 0, 0, 0, [])

    def run(self, jobs: list[VideoJob]) -> None:
        with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder), writable=True, create=True) as store:
            started = time.perf_counter()
            extractor, source = self.choice.extractor, self.choice.source
            reports = [ingest_video(store, j.info, j.options, extractor, self.detector, source) for j in jobs]
            self.row.seconds.append(time.perf_counter() - started)
        self.row.frames = sum(r.frames for r in reports)
        self.row.crops = sum(r.detections for r in reports)
        self.row.tracks = sum(r.tracks for r in reports)


class OnRay:
    """``ingest_many`` with a pool of ``workers`` Ray workers, started once."""

    def __init__(self, setup: WorkerSetup, workers: int, segment_seconds: float | None) -> None:
        self.workers = RayWorkers(setup, ClusterOptions(workers=workers))
        self.segment_seconds = segment_seconds
        cut = f", {segment_seconds:g} s segments" if segment_seconds else ", whole videos"
        name = f"Ray, {workers} worker{'s' if workers > 1 else ''}{cut}"
        self.row = Row(name, workers, self.workers.start_seconds, [], 0, 0, 0, [])

    def run(self, jobs: list[VideoJob]) -> None:
        with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder), writable=True, create=True) as store:
            report = ingest_many(store, jobs, self.workers, self.segment_seconds, progress=False)
        self.row.seconds.append(report.seconds)
        self.row.frames = sum(v.frames for v in report.videos)
        self.row.crops = sum(v.detections for v in report.videos)
        self.row.tracks = sum(v.tracks for v in report.videos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=120, help="frames of the source per video (two videos)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three runs, alternating")
    parser.add_argument("--every", type=int, default=2, help="process every n-th frame")
    parser.add_argument("--segment-seconds", type=float, default=None, help="cut the videos for the Ray runs")
    parser.add_argument("--checkpoint", default=DEFAULT_MODEL,
                        help="ReID checkpoint, a shipped model's name, or imagenet (default: the shipped model)")
    parser.add_argument("--embed-backend", default="auto", help="auto, torch or openvino (as reidkit ingest)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ingest_ray.json")
    args = parser.parse_args()
    checkpoint = args.checkpoint
    detector, detector_model = detector_source(None)
    setup = WorkerSetup(checkpoint, detector, str(detector_model) if detector_model else None,
                        backend=resolve_backend(args.embed_backend, "cpu"))
    jobs = video_jobs(args.video, args.frames, args.every)

    import ray

    connect(ray, ClusterOptions(workers=3))  # one local Ray for both pools (1 + 2 workers)
    before = machine_summary()
    runs = [SingleProcess(setup), OnRay(setup, 1, args.segment_seconds), OnRay(setup, 2, args.segment_seconds)]
    for round_ in range(args.repeats):
        for run in runs:
            run.row.load_before.append(machine_summary()["load_average"])
            run.run(jobs)
            print(f"round {round_ + 1}: {run.row.run}: {run.row.seconds[-1]:.1f} s", flush=True)
    for run in runs[1:]:
        run.workers.close()
    ray.shutdown()
    after = machine_summary()

    rows = [run.row for run in runs]
    single, one, two = rows
    speedup, speedup_median = one.best / two.best, one.median / two.median
    print(f"\n{args.video}: 2 videos x {args.frames} frames, every {args.every}; model {checkpoint}, detector "
          f"{detector}, embedding {setup.backend}; {args.repeats} rounds")
    print(f"{'run':<40}{'start s':>9}{'best s':>8}{'median s':>10}{'frames':>8}{'crops':>7}{'tracks':>8}{'fps':>7}")
    for r in rows:
        print(f"{r.run:<40}{r.start_seconds:>9.1f}{r.best:>8.1f}{r.median:>10.1f}{r.frames:>8}{r.crops:>7}"
              f"{r.tracks:>8}{r.frames / r.best:>7.1f}")
    print(f"speed-up 1 -> 2 Ray workers: {speedup:.2f}x best, {speedup_median:.2f}x median (start-up excluded); "
          f"2 Ray workers vs single process: {single.best / two.best:.2f}x best")
    print(f"load average before/after: {before['load_average']} / {after['load_average']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "video": str(args.video), "frames_per_video": args.frames, "every_n": args.every,
        "segment_seconds": args.segment_seconds, "checkpoint": checkpoint, "detector": detector,
        "embed_backend": setup.backend, "machine_before": before, "machine_after": after,
        "rows": [asdict(r) for r in rows], "speedup_1_to_2_workers_best": round(speedup, 3),
        "speedup_1_to_2_workers_median": round(speedup_median, 3),
        "same_work": len({(r.frames, r.crops, r.tracks) for r in rows}) == 1 if not args.segment_seconds else None,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
