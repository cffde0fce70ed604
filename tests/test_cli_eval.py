"""``reidkit eval-features`` through the real installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reidkit.evaluation import evaluate_features, save_features

REIDKIT = Path(sys.executable).with_name("reidkit")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REIDKIT), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def feature_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((8, 32))
    q_pids, g_pids = np.repeat(np.arange(1, 8), 3), np.r_[np.repeat(np.arange(1, 8), 6), np.zeros(10, int)]
    q_cams, g_cams = np.tile([0, 0, 1], 7), rng.integers(0, 3, g_pids.size)
    query = save_features(folder / "q.npz", centres[q_pids] + rng.standard_normal((q_pids.size, 32)), q_pids, q_cams)
    gallery = save_features(folder / "g.npz", centres[g_pids] + rng.standard_normal((g_pids.size, 32)), g_pids, g_cams)
    return query, gallery


def _expected(query: Path, gallery: Path, **options):
    from reidkit.evaluation import load_features

    q, g = load_features(query), load_features(gallery)
    return evaluate_features(q.features, q.pids, q.camids, g.features, g.pids, g.camids, **options)


def test_json_output_has_the_documented_keys_and_values(feature_files) -> None:
    query, gallery = feature_files
    done = _run("eval-features", "--query", str(query), "--gallery", str(gallery), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    required = {"rank1", "rank5", "rank10", "mAP", "mINP", "num_query", "num_gallery", "num_valid_query"}
    required |= {"rerank", "metric"}
    assert required <= result.keys()
    expected = _expected(query, gallery)
    assert {key: result[key] for key in expected} == expected
    assert result["rerank"] is False and result["metric"] == "euclidean" and result["num_query"] == 21


def test_json_with_rerank_cosine_and_multi_query(feature_files) -> None:
    query, gallery = feature_files
    done = _run(
        "eval-features", "--query", str(query), "--gallery", str(gallery), "--json", "--metric", "cosine",
        "--rerank", "--k1", "8", "--k2", "2", "--lambda", "0.5", "--multi-query", "--pool", "max", "--max-rank", "5",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    expected = _expected(
        query, gallery, metric="cosine", rerank=True, k1=8, k2=2, lambda_value=0.5, multi_query="max", max_rank=5
    )
    assert {key: result[key] for key in expected} == expected
    assert result["num_query"] == 14 and result["query_mode"] == "multi-max" and len(result["cmc"]) == 5


def test_table_output(feature_files) -> None:
    query, gallery = feature_files
    done = _run("eval-features", "--query", str(query), "--gallery", str(gallery), "--metric", "cosine")
    assert done.returncode == 0, done.stderr
    expected = _expected(query, gallery, metric="cosine")
    assert f"Rank-1   {expected['rank1']:8.2%}" in done.stdout
    assert f"mAP      {expected['mAP']:8.2%}" in done.stdout
    assert "metric    cosine" in done.stdout and "re-rank   no" in done.stdout


def test_a_bad_file_is_one_error_line_and_exit_code_2(feature_files, tmp_path) -> None:
    _, gallery = feature_files
    broken = tmp_path / "broken.npz"
    np.savez(broken, features=np.zeros((3, 4)), pids=np.zeros(2, int), camids=np.zeros(3, int))
    done = _run("eval-features", "--query", str(broken), "--gallery", str(gallery))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "broken.npz" in lines[0] and "'pids'" in lines[0]
