"""Who the detectors find and what the tracker keeps, on public annotated pedestrian sequences, side by side.

    python benchmarks/bench_detection_tracking.py --mot /work/public-data/MOT17-mini/train
    python benchmarks/bench_detection_tracking.py --mot DIR --detectors openvino,hog --every 1,2,4

``--mot`` is a folder of MOTChallenge sequences (``<seq>/seqinfo.ini``, ``img1/``, ``gt/gt.txt``); nothing is
downloaded. RESULTS.md used "MOT17-mini": the first 4-8 frames of the seven MOT17 training sequences with their
ground truth (MOTChallenge, CC BY-NC-SA 3.0), as kept for tests by github.com/mikel-brostrom/yolo_tracking at commit
6e8a541 (``assets/MOT17-mini``); the full MOT17 / MOT20 training sets (motchallenge.net) work unchanged.

Per detector (``DETECTORS`` names; each at its own default score threshold, which is what the tracker sees) and
sequence: recall and precision at IoU 0.5 for scores >= 0.5 and >= the threshold, AP, and detection frames per
second on the sequence's frames (one frame at a time, ``detect``). Then ByteTrack on those detections at the
sequence's native frame rate and when keeping every n-th frame (``--every``; ground truth on the kept frames only),
scored by motmetrics (MOTA, IDF1, identity switches) and TrackEval (HOTA; its MOTA / IDF1 must agree). Detection is
run once per frame and reused for every sampling, so the tracker is what differs between the rows.

``--video`` (default: the shared campus clip vtest.avi, 768x576 at 10 fps) gives the speed at 768x576, and the
low-frame-rate check of issue 28: over ``--video-frames`` frames, at the clip's rate and at 1 frame per second
(every 10th frame), the share of confident detections (score >= 0.5) that end up on a reported track, i.e. stored
by ``reidkit ingest``, and the frames with a confident detection where nobody was stored. JSON:
benchmarks/out/detection_tracking.json.

``--reid`` (issue 28 part 4) also embeds every detection's crop with the shipped Re-ID model (``choose_model``'s
default) and tracks again with those features (``ByteTracker.update(..., features)``, BoT-SORT's gated fusion):
each tracking row gains the same scores with appearance, and the speed section the embedding cost (crops per frame
when every detection is embedded before tracking, against only the tracked ones after it, and crops per second).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_summary  # noqa: E402
from mot_data import DetectionTally, MotDataError, Sequence, frame_tracks, load_sequences, tracking_scores  # noqa: E402

from reidkit.errors import ReidkitError  # noqa: E402
from reidkit.video import ByteTracker, Detector, build_detector, crop_person, iter_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "videos" / "vtest.avi"
OUT = Path(__file__).resolve().parent / "out" / "detection_tracking.json"
CONFIDENT = 0.5


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MotDataError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def detect_sequence(detector: Detector, sequence: Sequence) -> tuple[list[np.ndarray], float]:
    """Every frame's detections and the detector's frames per second (decoding the JPEG not timed; the first frame
    is run once untimed, since an OpenVINO detector compiles for each new frame size on its first call)."""
    detections, seconds = [], 0.0
    detector.detect(read_rgb(sequence.frames[0]))
    for path in sequence.frames:
        image = read_rgb(path)
        start = time.perf_counter()
        detections.append(detector.detect(image))
        seconds += time.perf_counter() - start
    return detections, len(sequence.frames) / seconds


def detection_row(
    sequence: Sequence, detections: list[np.ndarray], threshold: float, pooled: DetectionTally | None = None
) -> dict[str, Any]:
    """Scores on one sequence; ``pooled`` also receives its detections (the scores over all sequences at once)."""
    tally = DetectionTally([], [])
    for number, dets in enumerate(detections, start=1):
        people = sequence.boxes(sequence.people, number)[:, 2:6]
        for target in (tally, pooled) if pooled is not None else (tally,):
            target.add(people, sequence.boxes(sequence.distractors, number)[:, 2:6], dets)
    return tally_row(tally, threshold)


def tally_row(tally: DetectionTally, threshold: float) -> dict[str, Any]:
    recall, precision = tally.at(CONFIDENT)
    low_recall, low_precision = tally.at(threshold)
    return {"people": tally.num_people, "recall@0.5": recall, "precision@0.5": precision,
            "threshold": threshold, "recall@thr": low_recall, "precision@thr": low_precision,
            "AP": tally.average_precision()}


class CropEmbedder:
    """The shipped Re-ID model over person crops, counting crops and seconds (the cost of embedding before tracking)."""

    def __init__(self) -> None:
        from reidkit.inference.model_choice import choose_model

        self.extractor = choose_model(None, None, backend="auto").extractor
        self.crops, self.seconds = 0, 0.0

    def __call__(self, image: np.ndarray, detections: np.ndarray) -> np.ndarray:
        if len(detections) == 0:
            return np.zeros((0, self.extractor.feature_dim), dtype=np.float32)
        crops = [crop_person(image, row[:4]) for row in detections]
        start = time.perf_counter()
        features, _ = self.extractor.extract(crops)
        self.seconds += time.perf_counter() - start
        self.crops += len(crops)
        return features


def track_sequence(
    sequence: Sequence, detections: list[np.ndarray], every: int, features: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """ByteTrack over every ``every``-th frame at the sequence's frame rate, scored on those frames; with
    ``features`` (one array per frame), associating by appearance too."""
    tracker = ByteTracker(frame_rate=sequence.fps)
    scored = []
    for index in range(0, len(detections), every):
        number = index + 1
        tracked = tracker.update(detections[index], index, None if features is None else features[index])
        ids = np.array([t.track_id for t in tracked], dtype=int)
        boxes = np.array([t.box for t in tracked], dtype=np.float64).reshape(-1, 4)
        scored.append(frame_tracks(sequence.boxes(sequence.people, number),
                                   sequence.boxes(sequence.distractors, number), ids, boxes))
    return {"every": every, "fps_sampled": sequence.fps / every, "frames": len(scored), **tracking_scores(scored)}


def low_rate_storage(
    detector: Detector, video: Path, frames: int, fps: float, every: int, embed: CropEmbedder | None = None
) -> dict[str, Any]:
    """Share of confident detections that reach a reported track when keeping every ``every``-th frame, and how
    many tracks (gallery entries) they make; with ``embed``, tracking by appearance too."""
    tracker = ByteTracker(frame_rate=fps)
    confident = stored = empty = sampled = tracked_boxes = detected = 0
    track_ids: set[int] = set()
    for frame in iter_frames(video, every, end_frame=frames, progress=False):
        dets = detector.detect(frame.image)
        tracked = tracker.update(dets, frame.index, None if embed is None else embed(frame.image, dets))
        reported = [t for t in tracked if t.score >= CONFIDENT]
        track_ids.update(t.track_id for t in tracked)
        count = int((dets[:, 4] >= CONFIDENT).sum())
        confident, stored, sampled = confident + count, stored + len(reported), sampled + 1
        tracked_boxes, detected = tracked_boxes + len(tracked), detected + len(dets)
        empty += int(count > 0 and not reported)
    return {"every": every, "fps_sampled": fps / every, "frames": sampled, "confident": confident,
            "stored": stored, "stored_share": stored / max(confident, 1), "frames_with_nobody_stored": empty,
            "tracks": len(track_ids), "tracked_boxes": tracked_boxes, "detections": detected, "reid": embed is not None}


def video_speed(detector: Detector, video: Path, frames: int, rounds: int = 3) -> dict[str, float]:
    """Frames per second at the clip's size, one frame at a time (``detect``) and in ingest's chunks of 20
    (``detect_batch``, several requests in flight): the best of ``rounds``, the least disturbed by other load."""
    images = [f.image for f in iter_frames(video, end_frame=frames, progress=False)]
    detector.detect(images[0])  # first calls compile for this frame size
    detector.detect_batch(images[:2])
    single, batched = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for image in images:
            detector.detect(image)
        single.append(len(images) / (time.perf_counter() - start))
        start = time.perf_counter()
        for first in range(0, len(images), 20):
            detector.detect_batch(images[first : first + 20])
        batched.append(len(images) / (time.perf_counter() - start))
    return {"detect": max(single), "detect_batch": max(batched)}


def run_detector(
    name: str, sequences: list[Sequence], args: argparse.Namespace, embed: CropEmbedder | None
) -> dict[str, Any]:
    detector = build_detector(name)
    threshold = float(getattr(detector, "score_threshold", 0.0))
    rows, pooled = [], DetectionTally([], [])
    for sequence in sequences:
        detections, fps = detect_sequence(detector, sequence)
        height, width = read_rgb(sequence.frames[0]).shape[:2]
        rows.append({"sequence": sequence.name, "size": f"{width}x{height}", "native_fps": sequence.fps,
                     "detect_fps": fps, **detection_row(sequence, detections, threshold, pooled),
                     "tracking": [track_sequence(sequence, detections, every) for every in args.every]})
        if embed is not None:
            features = [embed(read_rgb(path), dets) for path, dets in zip(sequence.frames, detections, strict=True)]
            rows[-1]["tracking_reid"] = [track_sequence(sequence, detections, e, features) for e in args.every]
        print(f"  {name} {sequence.name}: recall@0.5 {rows[-1]['recall@0.5']:.3f}", flush=True)
    video_fps = args.video.is_file()
    speed = video_speed(detector, args.video, args.speed_frames) if video_fps else None
    modes = [None] if embed is None else [None, embed]
    storage = (
        [low_rate_storage(detector, args.video, args.video_frames, 10.0, every, mode)
         for every in (1, 10) for mode in modes]
        if video_fps else []
    )
    sweep = {f"{t:.1f}": dict(zip(("recall", "precision"), pooled.at(t), strict=True)) for t in np.arange(1, 10) / 10}
    return {"detector": name, "name": detector.name, "sequences": rows, "fps_768x576": speed,
            "pooled": {**tally_row(pooled, threshold), "by_threshold": sweep}, "low_rate_storage": storage}


def print_tables(results: list[dict[str, Any]]) -> None:
    print("\n| detector | sequence | size | people | recall@0.5 | precision@0.5 | thr | recall@thr | precision@thr"
          " | AP | detect fps |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        for r in result["sequences"]:
            print(f"| {result['detector']} | {r['sequence']} | {r['size']} | {r['people']} | {r['recall@0.5']:.3f} |"
                  f" {r['precision@0.5']:.3f} | {r['threshold']:.2f} | {r['recall@thr']:.3f} |"
                  f" {r['precision@thr']:.3f} | {r['AP']:.3f} | {r['detect_fps']:.1f} |")
    print("\n| detector | people | AP | recall / precision at score >= 0.3 | >= 0.4 | >= 0.5 | >= 0.6 | >= 0.7 |")
    print("| --- | ---: | ---: | --- | --- | --- | --- | --- |")
    for result in results:
        pooled = result["pooled"]
        cells = " | ".join(f"{pooled['by_threshold'][t]['recall']:.3f} / {pooled['by_threshold'][t]['precision']:.3f}"
                           for t in ("0.3", "0.4", "0.5", "0.6", "0.7"))
        print(f"| {result['detector']} (all sequences) | {pooled['people']} | {pooled['AP']:.3f} | {cells} |")
    print("\n| detector | sequence | every | fps | frames | MOTA | IDF1 | HOTA | IDSW | TrackEval MOTA / IDF1 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for result in results:
        for r in result["sequences"]:
            for key in ("tracking", "tracking_reid"):
                for t in r.get(key, []):
                    label = result["detector"] + (" +reid" if key == "tracking_reid" else "")
                    print(f"| {label} | {r['sequence']} | {t['every']} | {t['fps_sampled']:.1f} |"
                          f" {t['frames']} | {t['MOTA']:.3f} | {t['IDF1']:.3f} | {t['HOTA']:.3f} | {t['IDSW']} |"
                          f" {t['trackeval_MOTA']:.3f} / {t['trackeval_IDF1']:.3f} |")
    print("\n| detector | 768x576 fps, detect / detect_batch | sampled fps | frames | confident | stored | share | frames storing nobody"
          " | tracks |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        for s in result["low_rate_storage"]:
            label = result["detector"] + (" +reid" if s["reid"] else "")
            speed = result["fps_768x576"]
            print(f"| {label} | {speed['detect']:.1f} / {speed['detect_batch']:.1f} | {s['fps_sampled']:.0f} | {s['frames']} |"
                  f" {s['confident']} | {s['stored']} | {s['stored_share']:.3f} | {s['frames_with_nobody_stored']} |"
                  f" {s['tracks']} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mot", type=Path, required=True, help="folder of MOTChallenge sequences (or one sequence)")
    parser.add_argument("--detectors", default="openvino,hog", help="comma-separated DETECTORS names")
    parser.add_argument("--every", default="1,2,4", help="comma-separated frame sampling steps for the tracker")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="768x576 clip for speed and the 1 fps check")
    parser.add_argument("--video-frames", type=int, default=160, help="frames of --video for the low-rate check")
    parser.add_argument("--speed-frames", type=int, default=40, help="frames of --video timed for speed")
    parser.add_argument("--reid", action="store_true", help="also track with the shipped Re-ID model's features")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        args.every = [int(v) for v in args.every.split(",")]
    except ValueError:
        parser.error(f"--every takes comma-separated positive integers, got {args.every!r}")
    if min(args.every) < 1:
        parser.error(f"--every takes positive integers, got {args.every}")
    args.detectors = [d for d in args.detectors.split(",") if d]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sequences = load_sequences(args.mot)
        before = machine_summary()
        embed = CropEmbedder() if args.reid else None
        results = [run_detector(name, sequences, args, embed) for name in args.detectors]
    except (MotDataError, ReidkitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    after = machine_summary()
    print_tables(results)
    if embed is not None and embed.crops:
        print(f"Re-ID embedding: {embed.crops} crops in {embed.seconds:.1f} s ({embed.crops / embed.seconds:.0f}/s)")
    print(f"load average before/after: {before['load_average']} / {after['load_average']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"mot": str(args.mot), "video": str(args.video), "machine_before": before, "machine_after": after,
               "results": results,
               "reid_embedding": None if embed is None else {"crops": embed.crops, "seconds": embed.seconds}}
    args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
