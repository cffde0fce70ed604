"""The whole ingest on a real video, per detector and embedding backend: frames/s and where the time goes.

Runs ``reidkit.search.ingest_video`` exactly as ``reidkit ingest`` does (decode and detect in a background thread,
track, embed, JPEG + SQLite commit) into a fresh temporary store for every combination, and reports processed
frames per second, the real-time factor (video seconds ingested per wall second), process CPU time, and the
per-stage wall seconds from the ingest's own report (stages overlap, so they add up to more than the total).
Model loading (and OpenVINO's conversion of the ReID network) happens once per combination, outside the timing,
and is reported separately.

    python benchmarks/bench_ingest.py                                   # vtest.avi, 400 frames, openvino x both
    python benchmarks/bench_ingest.py --detectors openvino,hog --backends openvino,torch --frames 795

The ReID model is ``runs/demo/mgn_demo.pt`` when ``make demo`` has written it (MGN-MobileNetV2, 128x64), else
``--checkpoint``. Prints a table and writes benchmarks/out/ingest.json.
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

from reidkit.search.ingest import IngestOptions, ingest_video  # noqa: E402
from reidkit.models.zoo import DEFAULT_MODEL, is_shipped_model  # noqa: E402
from reidkit.inference.model_choice import choose_model  # noqa: E402
from reidkit.video.detector_choice import choose_detector  # noqa: E402
from reidkit.store.writer import Store  # noqa: E402
from reidkit.video import probe_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"


@dataclass
class Row:
    detector: str
    backend: str
    frames: int
    crops: int
    seconds: float
    cpu_seconds: float
    fps: float
    realtime_factor: float
    setup_seconds: float
    stage_seconds: dict[str, float]


def run_one(video: Path, detector_name: str, backend: str, checkpoint: str, frames: int, every_n: int) -> Row:
    info = probe_video(video)
    started = time.perf_counter()
    choice = choose_model(checkpoint, None, backend=backend)
    detector = choose_detector(detector_name)
    setup = time.perf_counter() - started
    options = IngestOptions("bench", every_n=every_n, end_frame=frames * every_n, progress=False)
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder), writable=True, create=True) as store:
        cpu = time.process_time()
        report = ingest_video(store, info, options, choice.extractor, detector, choice.source)
        cpu = time.process_time() - cpu
    return Row(
        detector=detector.name,
        backend=backend,
        frames=report.frames,
        crops=report.detections,
        seconds=round(report.seconds, 2),
        cpu_seconds=round(cpu, 2),
        fps=round(report.frames / report.seconds, 2),
        realtime_factor=round(report.frames * every_n / info.fps / report.seconds, 2),
        setup_seconds=round(setup, 1),
        stage_seconds={k: round(v, 2) for k, v in report.stage_seconds.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=400, help="processed frames per combination")
    parser.add_argument("--every", type=int, default=1, help="process every n-th frame")
    parser.add_argument("--detectors", default="openvino")
    parser.add_argument("--backends", default="openvino,torch", help="ReID embedding backends to compare")
    parser.add_argument("--checkpoint", default=DEFAULT_MODEL,
                        help="ReID checkpoint, a shipped model's name, or imagenet")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "ingest.json")
    args = parser.parse_args()
    if args.checkpoint != "imagenet" and not is_shipped_model(args.checkpoint) and not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint} does not exist; pass a model file, a shipped model or imagenet")

    before = machine_summary()
    rows = []
    for detector in args.detectors.split(","):
        for backend in args.backends.split(","):
            rows.append(run_one(args.video, detector, backend, args.checkpoint, args.frames, args.every))
            print(f"done {detector} / {backend}", flush=True)

    info = probe_video(args.video)
    print(f"\n{info.path}: {info.width}x{info.height} @ {info.fps:g} fps, every {args.every}; model {args.checkpoint}")
    stages = list(rows[0].stage_seconds)
    header = f"{'detector':<38}{'embed':>9}{'frames':>7}{'crops':>7}{'s':>7}{'cpu s':>7}{'fps':>7}{'x rt':>6}"
    print(header + "".join(f"{name:>8}" for name in stages) + f"{'setup':>7}")
    for r in rows:
        line = f"{r.detector:<38}{r.backend:>9}{r.frames:>7}{r.crops:>7}{r.seconds:>7.1f}{r.cpu_seconds:>7.1f}"
        line += f"{r.fps:>7.1f}{r.realtime_factor:>6.2f}" + "".join(f"{r.stage_seconds[s]:>8.1f}" for s in stages)
        print(line + f"{r.setup_seconds:>7.1f}")
    after = machine_summary()
    print(f"load average before/after: {before['load_average']} / {after['load_average']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "video": info.path,
        "video_fps": info.fps,
        "every_n": args.every,
        "checkpoint": args.checkpoint,
        "machine_before": before,
        "machine_after": after,
        "rows": [asdict(r) for r in rows],
    }
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
