"""The front half of ingest on a real video: decode, detect, track, crop, per detector, in ms per frame.

Runs the stages serially on chunks of frames, the way ingest does, timing each stage separately (wall clock and
process CPU time, since a shared machine inflates the former). OpenVINO is timed both ways: ``detect`` one frame at
a time (LATENCY hint) and ``detect_batch`` over the chunk (THROUGHPUT hint, several requests in flight).

    python benchmarks/bench_ingest_front.py                      # vtest.avi, 200 frames, hog + openvino, 2 cores
    python benchmarks/bench_ingest_front.py --frames 795 --cores 0   # whole clip, every core the process may use

Prints a table and writes benchmarks/out/ingest_front.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reidkit.video import ByteTracker, build_detector, crop_person, crop_quality, iter_frames, probe_video
from reidkit.video.types import Detector, Frame

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"


@dataclass
class StageTimes:
    """Accumulated wall and CPU seconds of one stage."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall_s += time.perf_counter() - wall
        self.cpu_s += time.process_time() - cpu


@dataclass
class Row:
    detector: str
    mode: str
    frames: int
    decode_ms: float
    detect_ms: float
    track_ms: float
    crop_ms: float
    total_ms: float
    fps: float
    detect_cpu_ms: float
    detections_per_frame: float
    confident_per_frame: float
    tracked_boxes: int
    track_ids: int


def run_one(
    video: Path, detector: Detector, batched: bool, frames: int, every_n: int, chunk: int, fps: float
) -> Row:
    decode, detect, track, crop = StageTimes(), StageTimes(), StageTimes(), StageTimes()
    tracker = ByteTracker(frame_rate=fps)
    stream = iter_frames(video, every_n=every_n, end_frame=frames * every_n, progress=False)
    detections = confident = tracked_boxes = processed = 0
    ids: set[int] = set()
    while True:
        with decode.measure():
            batch: list[Frame] = [f for _, f in zip(range(chunk), stream)]
        if not batch:
            break
        images = [f.image for f in batch]
        results: list[np.ndarray] = []
        if batched:
            with detect.measure():
                results = detector.detect_batch(images)
        else:
            for image in images:
                with detect.measure():
                    results.append(detector.detect(image))
        for frame, dets in zip(batch, results, strict=True):
            with track.measure():
                tracked = tracker.update(dets, frame.index)
            with crop.measure():
                for t in tracked:
                    crop_person(frame.image, t.box)
                    crop_quality(t.box, t.score, frame.image.shape)
            detections += len(dets)
            confident += int((dets[:, 4] >= 0.5).sum())
            tracked_boxes += len(tracked)
            ids |= {t.track_id for t in tracked}
        processed += len(batch)
    per_frame = 1000.0 / processed
    total = (decode.wall_s + detect.wall_s + track.wall_s + crop.wall_s) * per_frame
    return Row(
        detector=detector.name,
        mode="batch" if batched else "single",
        frames=processed,
        decode_ms=decode.wall_s * per_frame,
        detect_ms=detect.wall_s * per_frame,
        track_ms=track.wall_s * per_frame,
        crop_ms=crop.wall_s * per_frame,
        total_ms=total,
        fps=1000.0 / total,
        detect_cpu_ms=detect.cpu_s * per_frame,
        detections_per_frame=detections / processed,
        confident_per_frame=confident / processed,
        tracked_boxes=tracked_boxes,
        track_ids=len(ids),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=200, help="frames to process per detector")
    parser.add_argument("--every-n", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=16, help="frames decoded and detected together")
    parser.add_argument("--detectors", default="hog,openvino")
    parser.add_argument("--cores", type=int, default=2, help="pin the process to this many cores (0 = leave as is)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ingest_front.json")
    args = parser.parse_args()

    if args.cores > 0 and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[: args.cores])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = probe_video(args.video)
    load_before = os.getloadavg()

    rows: list[Row] = []
    for name in args.detectors.split(","):
        detector = build_detector(name)
        warmup = next(iter(iter_frames(args.video, end_frame=1, progress=False))).image
        detector.detect(warmup)  # compile / allocate outside the timed region
        detector.detect_batch([warmup, warmup])
        modes = [False, True] if name == "openvino" else [False]
        for batched in modes:
            rows.append(run_one(args.video, detector, batched, args.frames, args.every_n, args.chunk, info.fps))
            print(f"done {detector.name} {'batch' if batched else 'single'}", flush=True)

    header = f"{'detector':<40}{'mode':>7}{'decode':>8}{'detect':>8}{'(cpu)':>8}{'track':>7}{'crop':>6}"
    header += f"{'total':>8}{'fps':>7}{'det/f':>7}{'>=.5/f':>7}{'ids':>5}"
    print(f"\n{info.path}: {info.width}x{info.height} @ {info.fps:g} fps; {cores} cores; ms per frame")
    print(header)
    for r in rows:
        print(
            f"{r.detector:<40}{r.mode:>7}{r.decode_ms:>8.1f}{r.detect_ms:>8.1f}{r.detect_cpu_ms:>8.1f}"
            f"{r.track_ms:>7.2f}{r.crop_ms:>6.2f}{r.total_ms:>8.1f}{r.fps:>7.1f}"
            f"{r.detections_per_frame:>7.1f}{r.confident_per_frame:>7.1f}{r.track_ids:>5}"
        )
    load_after = os.getloadavg()
    print(f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} (a busy machine inflates wall times)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "video": info.path,
        "video_size": [info.width, info.height],
        "video_fps": info.fps,
        "every_n": args.every_n,
        "chunk": args.chunk,
        "cores": cores,
        "machine": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "load_average_before_after": [load_before[0], load_after[0]],
        "rows": [asdict(r) for r in rows],
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
