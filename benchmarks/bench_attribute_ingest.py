"""What attributes cost ingest: the same video ingested with the shipped model's attribute head on and off.

    python benchmarks/bench_attribute_ingest.py [--frames 400] [--every 2] [--repeats 2]

Both runs use ``reidkit.search.ingest_video`` as ``reidkit ingest`` does (OpenVINO detector and embedding backend),
into fresh temporary stores, alternating on / off ``--repeats`` times so that a machine's drift hits both alike.
"Off" is the same model's extractor asked for features only: the difference is the head's matrix product and
softmaxes in the embedding pass plus writing and aggregating the attribute rows. The goal (issue 27): at most 15 %
more ingest time. Prints JSON; writes benchmarks/out/attribute_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_summary  # noqa: E402

from reidkit.inference import FeatureExtractor  # noqa: E402
from reidkit.models.zoo import DEFAULT_MODEL  # noqa: E402
from reidkit.search.ingest import IngestOptions, ingest_video  # noqa: E402
from reidkit.video.detector_choice import choose_detector  # noqa: E402
from reidkit.store.writer import Store  # noqa: E402
from reidkit.video import probe_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "videos" / "vtest.avi")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "attribute_ingest.json")
    args = parser.parse_args()
    info = probe_video(args.video)
    detector = choose_detector(None)
    extractors = {mode: FeatureExtractor(DEFAULT_MODEL, progress=False, backend="openvino", attributes=mode == "on")
                  for mode in ("off", "on")}
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    embed: dict[str, list[float]] = {"off": [], "on": []}
    crops = 0
    for _ in range(args.repeats + 1):  # the first round warms caches (OpenVINO compiles) and is not counted
        for mode, extractor in extractors.items():
            with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "s", writable=True,
                                                                    create=True) as store:
                options = IngestOptions("cam1", None, every_n=args.every, end_frame=args.frames, progress=False)
                started = time.perf_counter()
                report = ingest_video(store, info, options, extractor, detector, DEFAULT_MODEL)
                seconds[mode].append(time.perf_counter() - started)
                embed[mode].append(report.stage_seconds.get("embed", 0.0))
                crops = report.detections
    record = {
        "video": args.video.name, "frames": args.frames, "every": args.every, "crops": crops,
        "repeats": args.repeats, "machine": machine_summary(),
        **{f"{mode}_seconds": round(statistics.median(values[1:]), 2) for mode, values in seconds.items()},
        **{f"{mode}_embed_seconds": round(statistics.median(values[1:]), 2) for mode, values in embed.items()},
    }
    record["extra_fraction"] = round(record["on_seconds"] / record["off_seconds"] - 1, 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
