"""How large can the person-search gallery grow before exact search is too slow, and what replaces it?

The store (``reidkit.search``) keeps an exact ``IndexFlatIP`` while it is small and switches to an approximate IVF
index past a size. This benchmark measures where that size lies and which approximate index keeps recall@10 >= 0.98
with a single-query p50 under 20 ms on the machine it runs on:

* ``flat``            exact inner product (the small-gallery index), also swept over small sizes to find where its
                      p50 crosses 20 ms (the store's ``FLAT_MAX_ELEMENTS``);
* ``ivf_flat``        IVF with full float32 vectors in the lists;
* ``ivf_sq8``         IVF with 8-bit scalar-quantised vectors (a quarter of the memory);
* ``ivf_pq``          IVF-PQ alone (compressed codes, approximate scores);
* ``ivf_pq_rerank``   IVF-PQ shortlist of ``--rerank-depth`` re-scored exactly with vectors read from disk, which is
                      what the store does (its exact vectors live in SQLite). The vectors are float32 when they fit
                      on the scratch disk and float16 otherwise (10M x 2048 is 82 GB as float32, 41 GB as float16;
                      ``--rerank-dtype`` forces one); recall is still counted against the float32 ground truth;
* ``hnsw``            HNSW32 graph, for reference only: it cannot remove vectors, which the store needs.

Features are synthetic but clustered like ReID features: identities (about 20 crops each, as a tracked walk gives)
around a few hundred appearance modes in a 64-d latent space, mapped to ``dim`` dimensions, plus isotropic noise,
then L2-normalised. A query is a new crop of a stored identity, so its true neighbours are that walk's crops and
recall@10 means "the ranking among near-equal neighbours survives the approximation", the hard case. Uniform noise
would make every index look either perfect or useless.

Data is generated in chunks from per-chunk seeds, so nothing larger than one index is ever held; ground truth is an
exact streaming top-10 for ``--exact-queries`` queries, over chunks generated two at a time (``--threads``: NumPy's
generators release the GIL), whereas index adds see one chunk at a time so that nothing competes with the add rate.
Kinds whose index would exceed ``--max-ram-gb`` are skipped and listed as such. ``--work-dir`` keeps the ground
truth, built indexes (with their build times) and re-scoring vectors, so that a rerun at 10M x 2048 (half an hour
of building on 2 cores) goes straight to the timed searches. Prints a table and writes
``benchmarks/out/search_scale.json``.

    python benchmarks/bench_search_scale.py                       # 1M and 10M, 2048-d and 256-d
    python benchmarks/bench_search_scale.py --sizes 20000 --dims 128 --queries 100   # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Without this, OpenMP threads spin while waiting and, on a machine shared with other jobs, a 2-thread FAISS
# call can take minutes instead of seconds. Must be set before FAISS loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

TARGET_RECALL = 0.98
TARGET_P50_MS = 20.0
CHUNK_ROWS = 50_000
KINDS = ("flat", "ivf_flat", "ivf_sq8", "ivf_pq", "hnsw")
DEFAULT_KINDS = ("flat", "ivf_flat", "ivf_sq8", "ivf_pq")
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128)
HNSW_EF = (16, 32, 64, 128, 256)


class ClusteredFeatures:
    """Deterministic clustered unit vectors, generated chunk by chunk so that 10M x 2048 never sits in memory."""

    def __init__(self, n: int, dim: int, seed: int = 0, crops_per_identity: int = 20, latent_dim: int = 64) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng([seed, 0])
        num_identities = max(1, n // crops_per_identity)
        modes = rng.standard_normal((256, latent_dim), dtype=np.float32)
        mode_of = rng.integers(len(modes), size=num_identities)
        self.centers = modes[mode_of] + 0.6 * rng.standard_normal((num_identities, latent_dim), dtype=np.float32)
        self.projection = rng.standard_normal((latent_dim, dim), dtype=np.float32) / math.sqrt(latent_dim)
        # Chosen so that a query's nearest neighbours have cosine ~0.55 (top-1) to ~0.48 (top-10), with other
        # identities close behind, as trained ReID features do; tighter clusters make every IVF look perfect.
        self.within, self.noise = 0.8, 1.0

    def _sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        identities = rng.integers(len(self.centers), size=count)
        latent = self.centers[identities] + self.within * rng.standard_normal(
            (count, self.centers.shape[1]), dtype=np.float32
        )
        x = latent @ self.projection
        x += self.noise * rng.standard_normal((count, self.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def _chunk(self, start: int, rows: int) -> np.ndarray:
        return self._sample(np.random.default_rng([self.seed, 1, start]), min(rows, self.n - start))

    def chunks(self, rows: int = CHUNK_ROWS, workers: int = 1, desc: str = "") -> Iterator[tuple[int, np.ndarray]]:
        """The same chunks whatever ``workers`` is (each has its own seed); workers > 1 generates that many ahead.
        A ``desc`` shows a progress bar (10M x 2048 takes tens of minutes per pass on 2 cores)."""
        with tqdm(total=self.n, desc=desc, unit="vec", unit_scale=True, disable=not desc, mininterval=5) as bar:
            for start, chunk in self._generate(rows, workers):
                yield start, chunk
                bar.update(len(chunk))

    def _generate(self, rows: int, workers: int) -> Iterator[tuple[int, np.ndarray]]:
        starts = range(0, self.n, rows)
        if workers <= 1:
            for start in starts:
                yield start, self._chunk(start, rows)
            return
        with ThreadPoolExecutor(workers) as pool:
            for begin in range(0, self.n, rows * workers):
                batch = [s for s in starts if begin <= s < begin + rows * workers]
                yield from zip(batch, pool.map(lambda s: self._chunk(s, rows), batch))

    def training_sample(self, count: int) -> np.ndarray:
        return self._sample(np.random.default_rng([self.seed, 3]), min(count, self.n))

    def queries(self, count: int) -> np.ndarray:
        return self._sample(np.random.default_rng([self.seed, 2]), count)


@dataclass
class OperatingPoint:
    param: str
    value: int
    recall_at_10: float
    p50_ms: float
    p99_ms: float


@dataclass
class KindResult:
    kind: str
    n: int
    dim: int
    status: str  # "ok" or "skipped: ..."
    description: str = ""
    memory_gb: float = 0.0
    train_s: float = 0.0
    add_per_s: float = 0.0
    disk_mb: float = 0.0
    rerank_depth: int = 0  # shortlist re-scored exactly (0: none)
    sweep: list[OperatingPoint] = field(default_factory=list)
    chosen: OperatingPoint | None = None


def ivf_lists(n: int) -> int:
    """About sqrt(n) lists, a power of two: the usual balance of coarse and fine search cost."""
    return max(16, 2 ** round(math.log2(math.sqrt(n))))


def pq_subquantizers(dim: int) -> int:
    """8 dims per sub-quantizer for wide features, 4 for narrow ones (256 codes each)."""
    return dim // 8 if dim >= 1024 else dim // 4


def index_memory_gb(kind: str, n: int, dim: int) -> float:
    per_vector = {
        "flat": 4 * dim,
        "ivf_flat": 4 * dim + 8,
        "ivf_sq8": dim + 8,
        "ivf_pq": pq_subquantizers(dim) + 8,
        "hnsw": 4 * dim + 32 * 2 * 4,
    }[kind]
    return n * per_vector / 1e9


def build_index(kind: str, dim: int, quantizer: faiss.Index | None) -> tuple[faiss.Index, str]:
    """The index of ``kind``; IVF kinds share one trained coarse quantizer so k-means runs once per size."""
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "IDMap2,Flat"
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        return index, "HNSW32"
    assert quantizer is not None
    nlist = quantizer.ntotal
    inner = faiss.METRIC_INNER_PRODUCT
    if kind == "ivf_flat":
        return faiss.IndexIVFFlat(quantizer, dim, nlist, inner), f"IVF{nlist},Flat"
    if kind == "ivf_sq8":
        sq8 = faiss.ScalarQuantizer.QT_8bit
        return faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, sq8, inner), f"IVF{nlist},SQ8"
    m = pq_subquantizers(dim)
    return faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, inner), f"IVF{nlist},PQ{m}"


def train_quantizer(data: ClusteredFeatures) -> tuple[faiss.Index, float]:
    """k-means coarse centroids on a sample of 32 points per list (10 iterations: enough for IVF cells)."""
    nlist = ivf_lists(data.n)
    start = time.perf_counter()
    kmeans = faiss.Kmeans(data.dim, nlist, niter=10, spherical=True, seed=1, max_points_per_centroid=32)
    kmeans.train(data.training_sample(32 * nlist))
    quantizer = faiss.IndexFlatIP(data.dim)
    quantizer.add(kmeans.centroids)
    seconds = time.perf_counter() - start
    print(f"    coarse quantizer ({nlist} lists) in {seconds:.1f} s", flush=True)
    return quantizer, seconds


def exact_top_k(
    data: ClusteredFeatures, queries: np.ndarray, k: int, workers: int = 1, desc: str = ""
) -> np.ndarray:
    """Streaming exact top-k ids: one chunk at a time, keeping the best k per query."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for start, chunk in data.chunks(workers=workers, desc=desc):
        scores = queries @ chunk.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        all_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        all_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-all_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    return best_ids


def ground_truth(data: ClusteredFeatures, queries: np.ndarray, threads: int, cache: Path) -> np.ndarray:
    """Exact top-10 ids of ``queries``, read from ``cache`` when an earlier run of the same size left it there."""
    if cache.is_file():
        return np.load(cache)
    print(f"    exact ground truth for {len(queries)} queries ...", flush=True)
    start = time.perf_counter()
    truth = exact_top_k(data, queries, 10, threads, "ground truth")
    print(f"    ground truth in {time.perf_counter() - start:.1f} s", flush=True)
    partial = cache.with_name(cache.name + ".partial.npy")
    np.save(partial, truth)
    partial.rename(cache)
    return truth


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


class Reranker:
    """Exact re-scoring of a shortlist with vectors read from a file on disk, as the store does from SQLite.

    float16 storage halves the disk for galleries whose float32 vectors do not fit; scores are summed in float32.
    Rows are read with ``os.pread`` from ``READ_THREADS`` threads: past RAM (10M x 2048) every row is a random disk
    read, and on this VM's disk 100 cold rows took 251 ms through memory-mapped page faults (each fault reads ahead
    up to the disk's read_ahead_kb, 8 MB here), 17 ms with readahead off, 9 ms as serial ``pread`` and 2.9 ms as
    16 parallel ones.
    The file is written as ``PATH.partial`` and renamed once complete, so a complete file can be reused.
    """

    READ_THREADS = 16

    def __init__(self, path: Path, n: int, dim: int, dtype: np.dtype) -> None:
        self.path, self.n, self.dim, self.dtype = path, n, dim, np.dtype(dtype)
        self.complete = path.is_file()
        self._writer = None if self.complete else np.lib.format.open_memmap(
            path.with_name(path.name + ".partial"), mode="w+", dtype=self.dtype, shape=(n, dim)
        )
        self._fd: int | None = None
        self._offset = 0  # the .npy header's length, read when the file is first opened
        self._pool = ThreadPoolExecutor(self.READ_THREADS)

    @property
    def nbytes(self) -> int:
        return self.n * self.dim * self.dtype.itemsize

    def write(self, start: int, chunk: np.ndarray) -> None:
        if self._writer is not None:
            self._writer[start : start + len(chunk)] = chunk

    def finish(self) -> None:
        """All rows are written: flush and rename into place (a reused file was complete already)."""
        if self._writer is not None:
            self._writer.flush()
            partial = Path(self._writer.filename)
            del self._writer
            self._writer = None
            partial.rename(self.path)
            self.complete = True

    def rerank(self, query: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
        order = np.sort(ids[ids >= 0])  # sorted reads are kinder to the disk
        scores = self.read(order).astype(np.float32, copy=False) @ query
        return order[np.argsort(-scores)[:k]]

    def read(self, ids: np.ndarray) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            self._offset = np.load(self.path, mmap_mode="r").offset
        row = self.dim * self.dtype.itemsize
        fd, offset = self._fd, self._offset

        def read_rows(group: np.ndarray) -> bytes:
            return b"".join(os.pread(fd, row, offset + int(i) * row) for i in group)

        # One task per thread, not per row: a hundred tasks cost more than a hundred reads from the page cache.
        groups = np.array_split(ids, max(1, min(self.READ_THREADS, len(ids))))
        data = b"".join(self._pool.map(read_rows, groups))
        return np.frombuffer(data, dtype=self.dtype).reshape(len(ids), self.dim)

    def close(self) -> None:
        self._pool.shutdown()
        if self._fd is not None:
            os.close(self._fd)


def timed_search(
    index: faiss.Index, queries: np.ndarray, truth: np.ndarray, reranker: Reranker | None, depth: int
) -> tuple[float, float, float]:
    """Single queries, one at a time (a person search is one query): recall@10 on the ground-truth subset, and the
    p50 / p99 latency in ms including the exact re-scoring when there is a reranker."""
    latencies, found = [], []
    for q in queries:
        q = q[None, :]
        start = time.perf_counter()
        if reranker is None:
            ids = index.search(q, 10)[1][0]
        else:
            ids = reranker.rerank(q[0], index.search(q, depth)[1][0], 10)
        latencies.append(time.perf_counter() - start)
        found.append(np.pad(ids, (0, 10 - len(ids)), constant_values=-1))
    lat_ms = np.array(latencies) * 1000
    recall = recall_at_k(np.array(found[: len(truth)]), truth)
    return recall, float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 99))


def sweep(
    result: KindResult,
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    reranker: Reranker | None,
    depth: int,
) -> None:
    """Raise the search effort until recall@10 reaches the target; the first setting that does is ``chosen``."""
    if result.kind == "flat":
        settings = [("exact", 0)]
        queries = queries[: max(len(truth), 100)]  # exact search is slow and its latency barely varies
    elif result.kind == "hnsw":
        settings = [("efSearch", ef) for ef in HNSW_EF]
    else:
        settings = [("nprobe", p) for p in NPROBES if p <= faiss.extract_index_ivf(index).nlist]
    for param, value in settings:
        if param == "nprobe":
            faiss.extract_index_ivf(index).nprobe = value
        elif param == "efSearch":
            index.hnsw.efSearch = value
        recall, p50, p99 = timed_search(index, queries, truth, reranker, depth)
        result.sweep.append(OperatingPoint(param, value, round(recall, 4), round(p50, 3), round(p99, 3)))
        print(f"    {result.kind:<14} {param}={value:<4} R@10={recall:.4f} p50={p50:.2f} ms p99={p99:.2f} ms",
              flush=True)
        if recall >= TARGET_RECALL:
            break
    good = [p for p in result.sweep if p.recall_at_10 >= TARGET_RECALL]
    result.chosen = good[0] if good else max(result.sweep, key=lambda p: p.recall_at_10)


def rerank_dtype(n: int, dim: int, wanted: str, free_bytes: int) -> np.dtype | None:
    """float32 when it fits on the scratch disk with 5 GB to spare, else float16 if that fits, else None."""
    choices = ("float32", "float16") if wanted == "auto" else (wanted,)
    for name in choices:
        if n * dim * np.dtype(name).itemsize < free_bytes - 5e9:
            return np.dtype(name)
    return None


def run_kind(
    kind: str,
    data: ClusteredFeatures,
    quantizer: Callable[[], tuple[faiss.Index, float]],
    queries: np.ndarray,
    truth: np.ndarray,
    args: argparse.Namespace,
    scratch: Path,
) -> list[KindResult]:
    """Build ``kind`` over the whole gallery (or load it from ``--work-dir``) and measure it; ``ivf_pq`` also yields
    one re-scored row per depth."""
    n, dim = data.n, data.dim
    memory = index_memory_gb(kind, n, dim)
    result = KindResult(kind, n, dim, "ok", memory_gb=round(memory, 3))
    if memory > args.max_ram_gb:
        result.status = f"skipped: index needs {memory:.1f} GB > --max-ram-gb {args.max_ram_gb}"
        return [result]
    reranker = None
    if kind == "ivf_pq":
        name = f"vectors-n{n}-d{dim}-"
        reused = sorted(scratch.glob(f"{name}*.npy")) if args.rerank_dtype == "auto" else []
        dtype = np.dtype(reused[0].stem[len(name):]) if reused else rerank_dtype(
            n, dim, args.rerank_dtype, shutil.disk_usage(scratch).free
        )
        if dtype is not None:
            reranker = Reranker(scratch / f"{name}{dtype.name}.npy", n, dim, dtype)
    index_file, stats_file = scratch / f"{kind}-n{n}-d{dim}.faiss", scratch / f"{kind}-n{n}-d{dim}.json"
    if stats_file.is_file() and (reranker is None or reranker.complete):
        index = faiss.read_index(str(index_file))
        for key, value in json.loads(stats_file.read_text()).items():
            setattr(result, key, value)
        print(f"    {kind:<14} built earlier: {index_file}", flush=True)
    else:
        index = build(kind, data, quantizer, result, reranker)
        faiss.write_index(index, str(index_file) + ".partial")
        os.replace(str(index_file) + ".partial", index_file)
        result.disk_mb = round(index_file.stat().st_size / 1e6, 1)
        stats = {k: getattr(result, k) for k in ("description", "train_s", "add_per_s", "disk_mb")}
        stats_file.write_text(json.dumps(stats))
    sweep(result, index, queries, truth, None, 10)
    results = [result]
    if kind != "ivf_pq":
        return results
    for depth in args.rerank_depth:
        rescored = KindResult("ivf_pq_rerank", n, dim, "ok", memory_gb=result.memory_gb, train_s=result.train_s,
                              add_per_s=result.add_per_s, rerank_depth=depth)
        if reranker is None:
            rescored.status = f"skipped: even float16 vectors need {n * dim * 2 / 1e9:.0f} GB of disk, more than is free"
        else:
            rescored.description = (f"{result.description} + exact re-scoring of the top {depth} "
                                    f"({reranker.dtype.name} vectors on disk)")
            rescored.disk_mb = round(result.disk_mb + reranker.nbytes / 1e6, 1)
            sweep(rescored, index, queries, truth, reranker, depth)
        results.append(rescored)
    if reranker is not None:
        reranker.close()
        if args.work_dir is None:
            reranker.path.unlink()  # the next size's vectors may need the disk
    return results


def build(
    kind: str,
    data: ClusteredFeatures,
    quantizer: Callable[[], tuple[faiss.Index, float]],
    result: KindResult,
    reranker: Reranker | None,
) -> faiss.Index:
    """Train and fill the index, timing both; the re-scoring vectors are written in the same pass."""
    shared, shared_s = quantizer() if kind.startswith("ivf") else (None, 0.0)  # the coarse k-means, once per size
    index, result.description = build_index(kind, data.dim, shared)
    start = time.perf_counter()
    if not index.is_trained:
        index.train(data.training_sample(max(256 * 64, 50_000)))
    result.train_s = round(time.perf_counter() - start + shared_s, 2)
    add_s = 0.0
    for first, chunk in data.chunks(desc=f"{kind} add"):
        start = time.perf_counter()
        if kind == "hnsw":
            index.add(chunk)
        else:
            index.add_with_ids(chunk, np.arange(first, first + len(chunk), dtype=np.int64))
        add_s += time.perf_counter() - start
        if reranker is not None:
            reranker.write(first, chunk)
    if reranker is not None:
        reranker.finish()
    result.add_per_s = round(data.n / add_s)
    return index


def flat_crossover(dims: list[int], threads: int) -> dict[str, object]:
    """Flat p50 at small sizes, fitted per (n * dim), to find where exact search crosses ``TARGET_P50_MS``."""
    rows = []
    rng = np.random.default_rng(7)
    for dim in dims:
        for n in (20_000, 50_000, 100_000, 200_000):
            if n * dim * 4 > 2e9:
                continue
            x = rng.standard_normal((n, dim), dtype=np.float32)
            index = faiss.IndexFlatIP(dim)
            index.add(x)
            q = rng.standard_normal((200, dim), dtype=np.float32)
            lat = []
            for row in q:
                start = time.perf_counter()
                index.search(row[None, :], 10)
                lat.append(time.perf_counter() - start)
            p50 = float(np.percentile(np.array(lat) * 1000, 50))
            rows.append({"n": n, "dim": dim, "p50_ms": round(p50, 3)})
            print(f"    flat n={n:<7} dim={dim:<5} p50={p50:.2f} ms", flush=True)
            del index, x
    elements = np.array([r["n"] * r["dim"] for r in rows], dtype=np.float64)
    p50s = np.array([r["p50_ms"] for r in rows])
    ms_per_element = float(np.sum(elements * p50s) / np.sum(elements**2))
    return {
        "points": rows,
        "ms_per_million_elements": round(ms_per_element * 1e6, 4),
        "elements_at_target_p50": int(TARGET_P50_MS / ms_per_element),
        "threads": threads,
    }


def print_table(results: list[KindResult]) -> None:
    header = (
        f"{'n':>10} {'dim':>5} {'kind':<14} {'depth':>5} {'mem GB':>7} {'train s':>8} {'add/s':>9} {'disk MB':>9} "
        f"{'setting':>12} {'R@10':>7} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.chosen is None:
            print(f"{r.n:>10} {r.dim:>5} {r.kind:<14} {r.rerank_depth or '':>5} {r.memory_gb:>7.2f}  {r.status}")
            continue
        c = r.chosen
        setting = "exact" if c.param == "exact" else f"{c.param}={c.value}"
        print(
            f"{r.n:>10} {r.dim:>5} {r.kind:<14} {r.rerank_depth or '':>5} {r.memory_gb:>7.2f} {r.train_s:>8.1f} {r.add_per_s:>9} "
            f"{r.disk_mb:>9.1f} {setting:>12} {c.recall_at_10:>7.4f} {c.p50_ms:>8.2f} {c.p99_ms:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated gallery sizes")
    parser.add_argument("--dims", default="2048,256", help="comma-separated feature dimensions")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    parser.add_argument("--queries", type=int, default=500, help="single queries timed per setting")
    parser.add_argument("--exact-queries", type=int, default=200, help="queries with exact ground truth")
    parser.add_argument("--rerank-depth", default="100",
                        help="comma-separated shortlist sizes re-scored exactly (ivf_pq_rerank, one row each)")
    parser.add_argument("--rerank-dtype", choices=("auto", "float32", "float16"), default="auto",
                        help="how the re-scored vectors are kept on disk (auto: float32 if it fits, else float16)")
    parser.add_argument("--max-ram-gb", type=float, default=6.0, help="skip indexes larger than this")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep ground truth, built indexes and re-scoring vectors here and reuse them on a rerun "
                             "(default: a temporary folder, removed at the end)")
    parser.add_argument("--no-crossover", action="store_true", help="skip the small-size flat sweep")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "search_scale.json")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown --kinds {unknown}; choose from {', '.join(KINDS)}")
    try:
        args.rerank_depth = [int(d) for d in args.rerank_depth.split(",") if d]
    except ValueError:
        parser.error(f"--rerank-depth must be comma-separated integers, got {args.rerank_depth!r}")
    faiss.omp_set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    dims = [int(d) for d in args.dims.split(",")]

    report: dict[str, object] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__},
        "threads": args.threads,
        "targets": {"recall_at_10": TARGET_RECALL, "p50_ms": TARGET_P50_MS},
        "results": [],
    }
    if not args.no_crossover:
        print("flat (exact) latency at small sizes:")
        report["flat_crossover"] = flat_crossover(dims, args.threads)
    results: list[KindResult] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-search-", dir=args.out.parent)))
        else:
            scratch = args.work_dir
            scratch.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            for dim in dims:
                print(f"n={n} dim={dim}:", flush=True)
                data = ClusteredFeatures(n, dim)
                queries = data.queries(args.queries)
                truth = ground_truth(data, queries[: args.exact_queries], args.threads,
                                     scratch / f"truth-n{n}-d{dim}-q{args.queries}x{args.exact_queries}.npy")
                quantizer = functools.cache(lambda data=data: train_quantizer(data))
                for kind in kinds:
                    for result in run_kind(kind, data, quantizer, queries, truth, args, scratch):
                        if result.chosen is None:
                            print(f"    {result.kind:<14} {result.status}", flush=True)
                        results.append(result)
                    report["results"] = [asdict(r) for r in results]
                    args.out.write_text(json.dumps(report, indent=2))
    print()
    print_table(results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
