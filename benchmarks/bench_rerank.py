"""k-reciprocal re-ranking: reidkit.evaluation.re_ranking against the classic loop-based implementation.

Both re-rank the same squared-Euclidean distance blocks (features with an identity signal, so that re-ranking has
something to improve). Each method runs in a fresh subprocess, so that its peak resident memory (ru_maxrss,
which includes the input matrices it loads) is its own. Prints a table and writes benchmarks/out/rerank_SCALE.json.

    python benchmarks/bench_rerank.py --scale cuhk03   # 1,400 queries + 5,340 gallery
    python benchmarks/bench_rerank.py --scale market   # 3,368 + 15,913; the classic needs ~72 s and ~9 GB
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import identity_features, machine_summary, market_like_split, reference_re_ranking  # noqa: E402

from reidkit.evaluation import compute_distance_matrix, evaluate, re_ranking  # noqa: E402

SCALES = {
    "cuhk03": {"num_ids": 700, "num_queries": 1400, "num_gallery": 5340, "num_distractors": 0, "num_junk": 0,
               "num_cameras": 2},
    "market": {},
}
METHODS = {"reference": reference_re_ranking, "reidkit": re_ranking}
METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
OUT = Path(__file__).resolve().parent / "out"


def run_worker(method: str, inputs: Path, output: Path) -> None:
    """Child process: load the blocks, re-rank, save the result, report seconds and peak RSS as one JSON line."""
    with np.load(inputs) as blocks:
        q_g, q_q, g_g = blocks["q_g"], blocks["q_q"], blocks["g_g"]
    started = time.perf_counter()
    reranked = METHODS[method](q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3)
    seconds = time.perf_counter() - started
    np.save(output, reranked)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cuhk03")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--signal", type=float, default=0.3, help="identity signal of the synthetic features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.inputs, args.output)
        return

    split = market_like_split(seed=args.seed, **SCALES[args.scale])
    qf = identity_features(split.q_pids, args.dim, args.signal, args.seed, args.seed + 1)
    gf = identity_features(split.g_pids, args.dim, args.signal, args.seed, args.seed + 2)
    labels = (split.q_pids, split.g_pids, split.q_camids, split.g_camids)
    q_g = compute_distance_matrix(qf, gf)
    OUT.mkdir(parents=True, exist_ok=True)
    inputs = OUT / f"rerank_{args.scale}_inputs.npz"
    np.savez(inputs, q_g=q_g, q_q=compute_distance_matrix(qf, qf), g_g=compute_distance_matrix(gf, gf))
    before = evaluate(q_g, *labels)

    runs, outputs = {}, {}
    try:
        for method in METHODS:
            output = OUT / f"rerank_{args.scale}_{method}.npy"
            command = [sys.executable, __file__, "--worker", method, "--inputs", str(inputs), "--output", str(output)]
            finished = subprocess.run(command, check=True, capture_output=True, text=True)
            runs[method] = json.loads(finished.stdout.strip().splitlines()[-1])
            outputs[method] = np.load(output)
            output.unlink()
    finally:
        inputs.unlink(missing_ok=True)

    metrics = {method: evaluate(outputs[method], *labels) for method in METHODS}
    diffs = {key: abs(metrics["reidkit"][key] - metrics["reference"][key]) for key in METRIC_KEYS}
    result = {
        "benchmark": "rerank",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python benchmarks/bench_rerank.py", *sys.argv[1:]]),
        "scale": args.scale,
        "num_query": int(q_g.shape[0]),
        "num_gallery": int(q_g.shape[1]),
        "k1": 20,
        "k2": 6,
        "lambda": 0.3,
        "runs": runs,
        "speedup": runs["reference"]["seconds"] / runs["reidkit"]["seconds"],
        "max_abs_distance_diff": float(np.max(np.abs(outputs["reidkit"] - outputs["reference"]))),
        "identical_distances": bool(np.array_equal(outputs["reidkit"], outputs["reference"])),
        "metrics_before": {key: float(before[key]) for key in METRIC_KEYS},
        "metrics_after": {key: float(metrics["reidkit"][key]) for key in METRIC_KEYS},
        "metric_abs_diff": diffs,
        "machine": machine_summary(),
    }
    (OUT / f"rerank_{args.scale}.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"re-ranking at {args.scale} scale: {q_g.shape[0]} queries + {q_g.shape[1]} gallery, k1=20 k2=6 lambda=0.3")
    print(f"{'method':28s}{'seconds':>9s}{'peak RSS':>12s}{'speed-up':>10s}")
    for method, label in (("reference", "classic loops (reference)"), ("reidkit", "reidkit re_ranking")):
        run = runs[method]
        speedup = runs["reference"]["seconds"] / run["seconds"]
        print(f"{label:28s}{run['seconds']:9.2f}{run['peak_rss_mib'] / 1024:9.2f} GiB{speedup:9.1f}x")
    print(f"re-ranked distances identical: {result['identical_distances']} "
          f"(max |diff| {result['max_abs_distance_diff']:.1e})")
    print("Rank-1 / mAP before re-ranking {:.2%} / {:.2%}, after {:.2%} / {:.2%}".format(
        before["rank1"], before["mAP"], metrics["reidkit"]["rank1"], metrics["reidkit"]["mAP"]))
    print("max |reidkit - reference| metrics: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"load average {result['machine']['load_average']}; wrote {OUT / f'rerank_{args.scale}.json'}")


if __name__ == "__main__":
    main()
