"""FAISS or Milvus for a store's vectors? Both as the store builds them, on the same machine and the same data.

Each kind is reidkit's own index class (``reidkit.store.faiss_index.FaissIndex``, ``reidkit.store.milvus_index.
MilvusIndex`` on an embedded milvus-lite database), laid out as ``plan_index`` would for the gallery, or forced:

* ``faiss_flat``    exact ``IndexFlatIP`` (the store's layout up to 14M stored floats);
* ``faiss_ivfpq``   IVF-PQ (the store's layout past that), shortlist re-scored exactly;
* ``milvus_flat``   Milvus ``FLAT`` (exact);
* ``milvus_hnsw``   Milvus ``HNSW`` (the store's Milvus layout past 14M floats), shortlist re-scored exactly.

As in a store search, each query asks the index for a shortlist of 200 and re-scores it exactly (here from the
vectors in memory; the store reads them from SQLite, the same for both). Measured: build time (create + add every
vector + save, i.e. train / insert / flush), single-query p50 / p95 latency of the index search plus re-scoring,
recall@10 against exact search, and the same for a *filtered* search that keeps one camera of ten: FAISS returns
neighbours whatever their camera and the store deepens its shortlist (x4) until 30 pass, as ``search_store`` does;
Milvus applies the camera filter inside the search. Features: the clustered synthetic ReID-like vectors of
``bench_search_scale.py``. Prints a table and writes ``benchmarks/out/milvus.json``.

    python benchmarks/bench_milvus.py                          # 100k x 256, all four kinds
    python benchmarks/bench_milvus.py --n 5000 --dim 32 --queries 30   # smoke test
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_search_scale.py

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from reidkit.store.filters import SearchFilters, VectorFields  # noqa: E402
from reidkit.store.index_plan import IndexPlan, plan_index  # noqa: E402
from reidkit.store.vector_index import IndexLocation, VectorIndex, create_vector_index  # noqa: E402

KINDS = ("faiss_flat", "faiss_ivfpq", "milvus_flat", "milvus_hnsw")
SHORTLIST = 200  # what search_store asks the crop index for at --top-k 10
CAMERAS = 10
FILTERED_CAMERA = "cam0"


def _scale_module():
    """``bench_search_scale.py`` beside this file: its clustered feature generator and ground truth."""
    path = Path(__file__).resolve().parent / "bench_search_scale.py"
    spec = importlib.util.spec_from_file_location("bench_search_scale", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class KindResult:
    kind: str
    layout: str
    build_s: float
    disk_mb: float
    recall_at_10: float
    p50_ms: float
    p95_ms: float
    filtered_recall_at_10: float
    filtered_p50_ms: float
    filtered_p95_ms: float


def plan_for(kind: str, n: int, dim: int) -> IndexPlan:
    """The store's plan, or the approximate one it would make for ``n`` vectors past the exact threshold."""
    if kind.endswith("flat"):
        return IndexPlan("flat")
    wanted = plan_index(n, dim)
    if wanted.kind != "flat":
        return wanted
    return IndexPlan("ivf_pq", max(16, 2 ** round(math.log2(math.sqrt(n)))), dim // 4 if dim % 4 == 0 else dim)


def exact_top10(gallery: np.ndarray, queries: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ gallery.T
    if mask is not None:
        scores[:, ~mask] = -np.inf
    return np.argsort(-scores, axis=1)[:, :10]


def timed_queries(
    index: VectorIndex, gallery: np.ndarray, cameras: np.ndarray, queries: np.ndarray, filtered: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Found top-10 ids and per-query seconds: index shortlist + exact re-score (+ the store's deepening)."""
    filters = SearchFilters(cameras=(FILTERED_CAMERA,)) if filtered else None
    found, seconds = [], []
    for query in queries:
        start = time.perf_counter()
        depth = SHORTLIST
        while True:
            ids = index.search(query[None, :], depth, filters)[1][0]
            ids = ids[ids >= 0]
            if filtered and not index.applies_filters:
                ids = ids[cameras[ids] == FILTERED_CAMERA]  # the store checks each shortlisted row's camera
                if len(ids) < 30 and depth < len(gallery):
                    depth *= 4
                    continue
            break
        top = ids[np.argsort(-(gallery[ids] @ query))[:10]]
        seconds.append(time.perf_counter() - start)
        found.append(np.pad(top, (0, 10 - len(top)), constant_values=-1))
    return np.array(found), np.array(seconds)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)) / truth.size


def run_kind(kind: str, gallery: np.ndarray, cameras: np.ndarray, queries: np.ndarray, truths: dict[str, np.ndarray],
             work: Path) -> KindResult:
    n, dim = gallery.shape
    backend = kind.split("_")[0]
    folder = work / kind
    location = IndexLocation(backend, folder, {"namespace": "bench"} if backend == "milvus" else {})
    plan = plan_for(kind, n, dim)
    ids = np.arange(n, dtype=np.int64)
    epochs = ids.astype(np.float64)
    start = time.perf_counter()
    training = gallery[np.random.default_rng(0).choice(n, min(n, plan.training_size), replace=False)] \
        if plan.training_size else None
    index = create_vector_index(location, "crops", dim, plan, training)
    for first in range(0, n, 20_000):  # the store adds in batches of 20,000 rows
        part = slice(first, first + 20_000)
        fields = VectorFields(cameras[part], epochs[part], epochs[part]) if index.applies_filters else None
        index.add(ids[part], gallery[part], fields)
    index.save(1)
    build_s = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    layout = ("HNSW" if backend == "milvus" else plan.description) if plan.kind != "flat" else "FLAT"
    print(f"  {kind:<12} {layout}: built in {build_s:.1f} s ({disk:.0f} MB on disk)", flush=True)
    found, seconds = timed_queries(index, gallery, cameras, queries, filtered=False)
    found_f, seconds_f = timed_queries(index, gallery, cameras, queries, filtered=True)
    index.close()
    ms, ms_f = seconds * 1000, seconds_f * 1000
    result = KindResult(
        # Rounded for the JSON, finely enough that a toy-size run's sub-millisecond figures stay non-zero.
        kind, layout, round(build_s, 4), round(disk, 1),
        round(recall(found[: len(truths["all"])], truths["all"]), 4),
        round(float(np.percentile(ms, 50)), 4), round(float(np.percentile(ms, 95)), 4),
        round(recall(found_f[: len(truths["camera"])], truths["camera"]), 4),
        round(float(np.percentile(ms_f, 50)), 4), round(float(np.percentile(ms_f, 95)), 4),
    )
    print(f"  {kind:<12} R@10 {result.recall_at_10:.4f} p50 {result.p50_ms:.2f} ms p95 {result.p95_ms:.2f} ms | "
          f"1 camera of {CAMERAS}: R@10 {result.filtered_recall_at_10:.4f} p50 {result.filtered_p50_ms:.2f} ms "
          f"p95 {result.filtered_p95_ms:.2f} ms", flush=True)
    return result


def print_table(results: list[KindResult], reference: KindResult | None) -> None:
    header = (f"{'kind':<12} {'layout':<16} {'build s':>8} {'disk MB':>8} {'R@10':>7} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'x p50':>6} {'cam R@10':>9} {'cam p50':>8} {'cam p95':>8} {'x p50':>6}")
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.p50_ms / reference.p50_ms:.2f}" if reference else "-"
        ratio_f = f"{r.filtered_p50_ms / reference.filtered_p50_ms:.2f}" if reference else "-"
        print(f"{r.kind:<12} {r.layout:<16} {r.build_s:>8.1f} {r.disk_mb:>8.1f} {r.recall_at_10:>7.4f} "
              f"{r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {ratio:>6} {r.filtered_recall_at_10:>9.4f} "
              f"{r.filtered_p50_ms:>8.2f} {r.filtered_p95_ms:>8.2f} {ratio_f:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="gallery size")
    parser.add_argument("--dim", type=int, default=256, help="feature dimension")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--queries", type=int, default=300, help="single queries timed per kind and mode")
    parser.add_argument("--exact-queries", type=int, default=200, help="queries with exact ground truth")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "milvus.json")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"unknown --kinds {sorted(set(kinds) - set(KINDS))}; choose from {', '.join(KINDS)}")
    faiss.omp_set_num_threads(args.threads)

    data = _scale_module().ClusteredFeatures(args.n, args.dim)
    gallery = np.concatenate([chunk for _, chunk in data.chunks()])
    cameras = np.array([f"cam{i % CAMERAS}" for i in range(args.n)], dtype=object)
    queries = data.queries(args.queries)
    truth_queries = queries[: args.exact_queries]
    truths = {"all": exact_top10(gallery, truth_queries),
              "camera": exact_top10(gallery, truth_queries, cameras == FILTERED_CAMERA)}
    print(f"n={args.n} dim={args.dim} ({args.n * args.dim / 1e6:.1f}M stored floats; the store plans "
          f"{plan_index(args.n, args.dim).kind}), {args.queries} queries:", flush=True)
    results: list[KindResult] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-milvus-", dir=args.out.parent))
    try:
        for kind in kinds:
            results.append(run_kind(kind, gallery, cameras, queries, truths, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import pymilvus

    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__,
                    "pymilvus": pymilvus.__version__, "milvus_lite": _version("milvus-lite")},
        "n": args.n, "dim": args.dim, "queries": args.queries, "exact_queries": args.exact_queries,
        "shortlist": SHORTLIST, "filtered_share": 1 / CAMERAS, "threads": args.threads,
        "reference": "faiss_flat", "results": [asdict(r) for r in results],
    }
    args.out.write_text(json.dumps(report, indent=2))
    print()
    print_table(results, next((r for r in results if r.kind == "faiss_flat"), None))
    print(f"\nwrote {args.out}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
