"""``reidkit eval-features`` end to end against a plain NumPy script doing the same job, both as fresh processes.

Everything a user waits for is timed: interpreter start-up and imports, loading the query and gallery ``.npz``
files, the distance matrix and the Market-1501 evaluation. The reference is the plain way to do it: ``np.load``,
squared Euclidean distances with one NumPy matmul, then the classic per-query loop (``reference_evaluate`` in
common.py: stable argsort per query, drop junk and same-identity-same-camera images, CMC and AP). Features are
synthetic Market-1501-sized ones (3,368 queries x 15,913 gallery, 2048-d float32, 751 ids over 6 cameras,
distractors and junk) with an identity signal, so that the metrics are not near zero. The two commands run
alternately, each ``--repeats`` times; the best run of each is compared, and both must report the same Rank-1,
Rank-5, Rank-10, mAP and mINP (to 1e-4). Prints a table and writes benchmarks/out/cli_eval.json.

    python benchmarks/bench_cli_eval.py [--repeats 3] [--queries 3368 --gallery 15913 --dim 2048]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    MARKET_GALLERY,
    MARKET_QUERIES,
    identity_features,
    machine_summary,
    market_like_split,
    reference_evaluate,
)

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
TOLERANCE = 1e-4
MARKET_IDS, MARKET_DISTRACTORS, MARKET_JUNK = 751, 2798, 348


def reference_eval_features(query_path: Path, gallery_path: Path) -> dict[str, object]:
    """The plain reference, run in its own process: NumPy load, NumPy distances, the per-query loop."""
    with np.load(query_path) as query, np.load(gallery_path) as gallery:
        qf, q_pids, q_camids = query["features"], query["pids"], query["camids"]
        gf, g_pids, g_camids = gallery["features"], gallery["pids"], gallery["camids"]
    distmat = (qf * qf).sum(axis=1)[:, None] + (gf * gf).sum(axis=1)[None, :] - 2 * qf @ gf.T
    return reference_evaluate(distmat, q_pids, g_pids, q_camids, g_camids)


def write_features(folder: Path, num_query: int, num_gallery: int, dim: int, seed: int) -> tuple[Path, Path]:
    """Market-like labels scaled to the requested sizes, identity-signal features, saved as reidkit writes them."""
    from reidkit.evaluation import save_features  # only the parent writes files; the reference never imports reidkit

    scale = num_gallery / MARKET_GALLERY
    num_ids = max(2, min(MARKET_IDS, round(MARKET_IDS * num_query / MARKET_QUERIES)))
    split = market_like_split(
        seed=seed,
        num_ids=num_ids,
        num_queries=num_query,
        num_gallery=num_gallery,
        num_distractors=round(MARKET_DISTRACTORS * scale),
        num_junk=max(1, round(MARKET_JUNK * scale)),
    )
    query = identity_features(split.q_pids, dim, 0.3, seed, seed + 1)
    gallery = identity_features(split.g_pids, dim, 0.3, seed, seed + 2)
    return (
        save_features(folder / "query.npz", query, split.q_pids, split.q_camids),
        save_features(folder / "gallery.npz", gallery, split.g_pids, split.g_camids),
    )


def timed(command: list[str]) -> tuple[float, dict[str, object]]:
    """Wall seconds of one fresh process, and the JSON object it printed last."""
    started = time.perf_counter()
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; the best is kept")
    parser.add_argument("--queries", type=int, default=MARKET_QUERIES)
    parser.add_argument("--gallery", type=int, default=MARKET_GALLERY)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "cli_eval.json")
    parser.add_argument("--reference", nargs=2, type=Path, metavar=("QUERY", "GALLERY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        print(json.dumps(reference_eval_features(*args.reference)))
        return

    reidkit = shutil.which("reidkit", path=str(Path(sys.executable).parent))
    if reidkit is None:
        sys.exit(f"no reidkit command next to {sys.executable}: install reidkit into this environment")
    with tempfile.TemporaryDirectory(prefix="bench_cli_eval_") as folder:
        query, gallery = write_features(Path(folder), args.queries, args.gallery, args.dim, args.seed)
        commands = {
            "reidkit": [reidkit, "eval-features", "--query", str(query), "--gallery", str(gallery), "--json"],
            "reference": [sys.executable, __file__, "--reference", str(query), str(gallery)],
        }
        load_before = machine_summary()["load_average"]
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        metrics: dict[str, dict[str, object]] = {}
        for _ in range(args.repeats):
            for name, command in commands.items():
                elapsed, metrics[name] = timed(command)
                seconds[name].append(elapsed)

    diffs = {key: abs(float(metrics["reidkit"][key]) - float(metrics["reference"][key])) for key in METRIC_KEYS}
    best = {name: min(values) for name, values in seconds.items()}
    result = {
        "benchmark": "cli_eval",
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python benchmarks/bench_cli_eval.py", *sys.argv[1:]]),
        "num_query": args.queries,
        "num_gallery": args.gallery,
        "dim": args.dim,
        "seconds": seconds,
        "best_seconds": best,
        "speedup_best": best["reference"] / best["reidkit"],
        "metrics": {key: float(metrics["reidkit"][key]) for key in METRIC_KEYS},
        "max_abs_diff": diffs,
        "metrics_agree": all(diff <= TOLERANCE for diff in diffs.values()),
        "machine": {**machine_summary(), "load_average_before": load_before},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{args.queries} queries x {args.gallery} gallery, {args.dim}-d features, each command run {args.repeats}x")
    print(f"{'method':44s}{'best s':>8s}{'median s':>10s}{'speed-up':>10s}")
    labels = {"reference": "NumPy load + matmul + per-query loop", "reidkit": "reidkit eval-features"}
    for name in ("reference", "reidkit"):
        ratio = best["reference"] / best[name]
        print(f"{labels[name]:44s}{best[name]:8.2f}{np.median(seconds[name]):10.2f}{ratio:9.2f}x")
    print("metrics: " + ", ".join(f"{key} {value:.4f}" for key, value in result["metrics"].items()))
    print("max |reidkit - reference|: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    print(f"load average {load_before} before, {result['machine']['load_average']} after; wrote {args.out}")
    if not result["metrics_agree"]:
        sys.exit(f"reidkit and the reference disagree by more than {TOLERANCE}: {diffs}")


if __name__ == "__main__":
    main()
