"""The service load test at toy size (2 clients, 3 s, a 10-frame clip): it runs end to end against a real
``reidkit serve``, and its JSON reports no error, a finished job and a store that grew by what the job reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_load_test_runs_at_toy_size(tmp_path: Path, vtest_video: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_service_load.py"), "--video", str(vtest_video),
         "--clients", "2", "--seconds", "3", "--store-frames", "20", "--clip-frames", "10",
         "--work-dir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == 0 and result["requests"] == result["ok"] > 0, result["error_samples"]
    assert result["job"]["status"] == "done" and result["nothing_lost"], result["job"]
    assert result["counts_grown"]["videos"] == 1 and result["job_reported"]["detections"] > 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert "nothing lost: True" in done.stdout
