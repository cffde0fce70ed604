"""The eval-features benchmark at toy size: both commands run, agree, and the JSON says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_script_times_both_commands_and_finds_equal_metrics(tmp_path: Path) -> None:
    out = tmp_path / "cli_eval.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_cli_eval.py"), "--queries", "50", "--gallery", "300",
         "--dim", "64", "--repeats", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["num_query"], result["num_gallery"], result["dim"]) == (50, 300, 64)
    assert result["metrics_agree"] and max(result["max_abs_diff"].values()) <= 1e-4
    assert all(len(runs) == 2 and min(runs) > 0 for runs in result["seconds"].values())
    assert result["speedup_best"] == result["best_seconds"]["reference"] / result["best_seconds"]["reidkit"]
    assert 0 < result["metrics"]["mAP"] < 1 and 0 < result["metrics"]["rank1"] <= 1
    assert "reidkit eval-features" in done.stdout
