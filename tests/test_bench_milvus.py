"""The FAISS-vs-Milvus benchmark at toy size: it runs the store's own index classes, and its exact kinds must be
exact (with and without the camera filter), or its recall column would measure the benchmark, not the index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_benchmark_compares_all_four_kinds(tmp_path: Path) -> None:
    pytest.importorskip("milvus_lite", reason="the [milvus] extra is not installed")
    out = tmp_path / "milvus.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_milvus.py"), "--n", "3000", "--dim", "32",
         "--queries", "20", "--exact-queries", "20", "--threads", "1", "--out", str(out)],
        check=True, capture_output=True, text=True, timeout=300, env=env,
    )
    report = json.loads(out.read_text())
    rows = {row["kind"]: row for row in report["results"]}
    assert list(rows) == ["faiss_flat", "faiss_ivfpq", "milvus_flat", "milvus_hnsw"]
    for kind in ("faiss_flat", "milvus_flat"):  # exact search, filtered or not, is the ground truth
        assert rows[kind]["recall_at_10"] == 1.0 and rows[kind]["filtered_recall_at_10"] == 1.0, kind
    assert rows["faiss_ivfpq"]["layout"].startswith("IVF") and rows["milvus_hnsw"]["layout"] == "HNSW"
    # A flat FAISS index of 3,000 x 32 builds in well under a millisecond on an idle machine: timed, not zero-cost.
    assert all(row["build_s"] >= 0 and row["p50_ms"] > 0 for row in rows.values())
    assert all(row["build_s"] > 0 for kind, row in rows.items() if kind != "faiss_flat")
    assert not list(tmp_path.glob("bench-milvus-*")), "the scratch folder is left behind"
