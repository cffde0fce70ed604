"""The CLI search benchmark at toy size: the three searches run on a copy of a store and answer alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_script_times_cli_and_http_searches_that_agree(attribute_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_search.json"
    before = sorted(path.name for path in attribute_store.rglob("*"))
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_cli_search.py"), "--db", str(attribute_store),
         "--runs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["median_s"]) == {"cli", "cli_torch", "http"}
    assert all(len(runs) == 1 and runs[0] > 0 for runs in result["all_s"].values())
    assert all(result["same_hits"].values()) and result["hits"]
    assert result["state"] in ("idle", "loaded") and result["machine_before"]["cpus"] >= 1
    assert sorted(path.name for path in attribute_store.rglob("*")) == before  # the store was copied, not written
