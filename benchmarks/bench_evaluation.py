"""Market-1501-scale evaluation: reidkit.evaluation.evaluate against the classic per-query NumPy loop.

3,368 queries x 15,913 gallery images with Market-like labels (751 ids over 6 cameras, distractors, junk) and
random 2048-d features. Both run on the same float32 distance matrix in the same process; the loop runs once,
reidkit's evaluator is timed as the best of several repeats. Prints a table and writes benchmarks/out/evaluation.json.

    python benchmarks/bench_evaluation.py [--repeats 5] [--dim 2048] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    MARKET_GALLERY,
    MARKET_QUERIES,
    machine_summary,
    market_like_split,
    random_features,
    reference_evaluate,
)

from reidkit.evaluation import compute_distance_matrix, evaluate  # noqa: E402

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of reidkit's evaluator (best is kept)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "evaluation.json")
    args = parser.parse_args()

    split = market_like_split(seed=args.seed)
    started = time.perf_counter()
    query = random_features(MARKET_QUERIES, args.dim, args.seed + 1)
    distmat = compute_distance_matrix(query, random_features(MARKET_GALLERY, args.dim, args.seed + 2))
    distance_seconds = time.perf_counter() - started
    labels = (split.q_pids, split.g_pids, split.q_camids, split.g_camids)
    load_before = machine_summary()["load_average"]

    started = time.perf_counter()
    reference = reference_evaluate(distmat, *labels)
    reference_seconds = time.perf_counter() - started
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        ours = evaluate(distmat, *labels)
        times.append(time.perf_counter() - started)

    diffs = {key: abs(float(ours[key]) - float(reference[key])) for key in METRIC_KEYS}
    diffs["cmc"] = float(np.max(np.abs(np.asarray(ours["cmc"]) - np.asarray(reference["cmc"]))))
    result = {
        "benchmark": "evaluation",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python benchmarks/bench_evaluation.py", *sys.argv[1:]]),
        "num_query": MARKET_QUERIES,
        "num_gallery": MARKET_GALLERY,
        "dim": args.dim,
        "distance_matrix_seconds": distance_seconds,
        "reference_loop_seconds": reference_seconds,
        "reidkit_best_seconds": min(times),
        "reidkit_median_seconds": float(np.median(times)),
        "speedup_best": reference_seconds / min(times),
        "metrics": {key: float(ours[key]) for key in METRIC_KEYS},
        "max_abs_diff": diffs,
        "num_valid_query": {"reference": reference["num_valid_query"], "reidkit": ours["num_valid_query"]},
        "machine": {**machine_summary(), "load_average_before": load_before},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"Market-1501 scale: {MARKET_QUERIES} queries x {MARKET_GALLERY} gallery, {args.dim}-d random features")
    print(f"distance matrix (NumPy, blocked)   {distance_seconds:8.2f} s")
    print(f"{'method':34s}{'seconds':>9s}{'speed-up':>10s}")
    print(f"{'per-query NumPy loop (reference)':34s}{reference_seconds:9.3f}{1.0:9.1f}x")
    best = f"reidkit evaluate (best of {args.repeats})"
    print(f"{best:34s}{min(times):9.3f}{reference_seconds / min(times):9.1f}x")
    print(f"{'reidkit evaluate (median)':34s}{np.median(times):9.3f}{reference_seconds / np.median(times):9.1f}x")
    print("max |reidkit - reference|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"load average {load_before} before, {machine_summary()['load_average']} after; wrote {args.out}")


if __name__ == "__main__":
    main()
