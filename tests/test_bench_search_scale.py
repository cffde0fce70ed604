"""The search-scale benchmark's own machinery: its numbers are only as good as its data and its re-scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_parallel_chunks_are_the_serial_chunks(bench_search_scale):
    """The ground truth is computed over chunks generated two at a time, the index over chunks generated one at a
    time: both must be the same vectors, or recall would be measured against another gallery."""
    data = bench_search_scale.ClusteredFeatures(n=2_500, dim=32, seed=3)
    serial = list(data.chunks(rows=400))
    parallel = list(data.chunks(rows=400, workers=3))
    assert [start for start, _ in parallel] == [start for start, _ in serial] == list(range(0, 2_500, 400))
    for (_, a), (_, b) in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
    assert sum(len(chunk) for _, chunk in parallel) == 2_500


def test_float16_rescoring_keeps_the_exact_top10(bench_search_scale, tmp_path):
    data = bench_search_scale.ClusteredFeatures(n=5_000, dim=256, seed=1)
    gallery = np.concatenate([chunk for _, chunk in data.chunks()])
    queries = data.queries(20)
    truth = bench_search_scale.exact_top_k(data, queries, 10, workers=2)
    np.testing.assert_array_equal(truth, np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :10])

    reranker = bench_search_scale.Reranker(tmp_path / "v.npy", len(gallery), 256, np.dtype("float16"))
    reranker.write(0, gallery[:3_000])
    reranker.write(3_000, gallery[3_000:])
    assert not reranker.complete
    reranker.finish()
    assert reranker.complete and reranker.path.stat().st_size == 5_000 * 256 * 2 + 128  # float16 rows + .npy header
    np.testing.assert_array_equal(reranker.read(np.array([0, 2_999, 3_000, 4_999])),
                                  gallery[[0, 2_999, 3_000, 4_999]].astype(np.float16))
    shortlist = np.argsort(-(queries @ gallery.T), axis=1)[:, :200]
    found = np.stack([reranker.rerank(q, ids, 10) for q, ids in zip(queries, shortlist)])
    assert bench_search_scale.recall_at_k(found, truth) >= 0.99
    reranker.close()


def test_rerank_dtype_falls_back_to_float16_then_to_none(bench_search_scale):
    choose = bench_search_scale.rerank_dtype
    n, dim = 10_000_000, 2048  # 82 GB as float32, 41 GB as float16
    assert choose(n, dim, "auto", free_bytes=200e9) == np.float32
    assert choose(n, dim, "auto", free_bytes=80e9) == np.float16
    assert choose(n, dim, "auto", free_bytes=30e9) is None
    assert choose(n, dim, "float16", free_bytes=200e9) == np.float16
    assert choose(n, dim, "float32", free_bytes=80e9) is None


def test_the_script_writes_a_row_per_rerank_depth(tmp_path):
    out = tmp_path / "scale.json"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_search_scale.py"), "--sizes", "20000", "--dims", "64",
         "--kinds", "ivf_pq", "--queries", "60", "--exact-queries", "30", "--rerank-depth", "50,100",
         "--rerank-dtype", "float16", "--no-crossover", "--threads", "1", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    rows = json.loads(out.read_text())["results"]
    assert [(r["kind"], r["rerank_depth"]) for r in rows] == [("ivf_pq", 0), ("ivf_pq_rerank", 50), ("ivf_pq_rerank", 100)]
    plain, *rescored = rows
    for row in rescored:
        assert "float16 vectors on disk" in row["description"]
        assert row["disk_mb"] > plain["disk_mb"]  # the codes plus 20,000 x 64 float16 vectors
        # Re-scoring a shortlist of exact neighbours can only help: it beats the compressed scores alone.
        assert row["chosen"]["recall_at_10"] > plain["chosen"]["recall_at_10"]
    assert not list(tmp_path.glob("bench-search-*")), "the scratch folder (and its vectors file) is left behind"


def test_a_rerun_with_a_work_dir_reuses_what_the_first_run_built(tmp_path):
    work = tmp_path / "work"
    command = [
        sys.executable, str(REPO_ROOT / "benchmarks" / "bench_search_scale.py"), "--sizes", "20000", "--dims", "64",
        "--kinds", "ivf_pq", "--queries", "40", "--exact-queries", "20", "--no-crossover", "--threads", "1",
        "--work-dir", str(work),
    ]
    first = subprocess.run([*command, "--out", str(tmp_path / "a.json")], check=True, capture_output=True, text=True)
    assert "built earlier" not in first.stdout and "ground truth in" in first.stdout
    assert sorted(p.name for p in work.iterdir()) == [
        "ivf_pq-n20000-d64.faiss", "ivf_pq-n20000-d64.json", "truth-n20000-d64-q40x20.npy",
        "vectors-n20000-d64-float32.npy",
    ]
    second = subprocess.run([*command, "--out", str(tmp_path / "b.json")], check=True, capture_output=True, text=True)
    assert "built earlier" in second.stdout and "ground truth in" not in second.stdout
    a, b = (json.loads((tmp_path / name).read_text())["results"] for name in ("a.json", "b.json"))
    for row_a, row_b in zip(a, b, strict=True):
        assert (row_a["add_per_s"], row_a["disk_mb"]) == (row_b["add_per_s"], row_b["disk_mb"])  # build stats kept
        assert [p["recall_at_10"] for p in row_a["sweep"]] == [p["recall_at_10"] for p in row_b["sweep"]]
