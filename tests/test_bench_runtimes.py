"""The runtimes benchmark at toy size: every runtime embeds the same real crops, and the JSON holds the ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # exports and converts MGN-MobileNetV2
def test_the_script_compares_runtimes_on_the_same_crops(cuhk03_root: Path, shared_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    out = tmp_path / "runtimes.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_runtimes.py"), "--only", "MobileNetV2", "--images", "6",
         "--batch", "4", "--shared", str(shared_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    (case,) = report["cases"]
    assert report["images"] == 6 and report["threads"] == 2 and case["input_size"] == [256, 128]
    rows = {row["runtime"]: row for row in case["results"]}
    assert set(rows) == {"torch", "torch-1-thread", "onnxruntime", "openvino"}
    assert rows["torch"]["ratio_vs_eager"] == 1.0 and rows["torch"]["max_abs_diff_vs_eager"] == 0.0
    best = max(rows["torch"]["images_per_s"], rows["torch-1-thread"]["images_per_s"])
    assert rows["torch-1-thread"]["max_abs_diff_vs_eager"] < 1e-3
    for name in ("onnxruntime", "openvino"):
        row = rows[name]
        assert row["ratio_vs_eager"] == row["images_per_s"] / rows["torch"]["images_per_s"] > 0
        assert row["ratio_vs_best_eager"] == row["images_per_s"] / best
        assert row["max_abs_diff_l2_normalised"] <= 1e-4 and row["max_abs_diff_vs_eager"] < 1e-2
    assert "MGN MobileNetV2" in done.stdout and "onnxruntime" in done.stdout
