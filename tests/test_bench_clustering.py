"""The clustering benchmark at toy size: every compared setting runs and the JSON holds its scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from reidkit.evaluation import save_features


def test_the_table_compares_every_setting_on_a_features_file(bench_clustering, tmp_path: Path, capsys) -> None:
    features, pids = bench_clustering.synthetic(400, 32, 8, seed=1)
    cams = np.arange(400) % 2
    path = save_features(tmp_path / "f.npz", features, pids, cams)
    out = tmp_path / "clustering.json"
    report = bench_clustering.main(["--features", str(path), "--knn", "--out", str(out)])
    rows = {row["setting"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {s.name for s in bench_clustering.settings()} | {"agglomerative-jaccard knn-graph"}
    assert report["items"] == 400 and "hdbscan" in capsys.readouterr().out
    for row in rows.values():
        assert 0 <= row["f1"] <= 1 and row["num_clusters"] > 1 and row["seconds"] > 0
    assert rows["hdbscan +camnorm"]["params"]["camera_norm"] is True
    assert rows["hdbscan"]["params"]["camera_norm"] is False


def test_the_synthetic_scale_run_reports_time_and_memory(bench_clustering, tmp_path: Path) -> None:
    out = tmp_path / "syn.json"
    bench_clustering.main(["--synthetic", "3000", "--dim", "32", "--out", str(out)])
    result = json.loads(out.read_text())["synthetic"]
    assert result["items"] == 3000 and result["params"]["graph"] == "knn"
    assert result["seconds"] > 0 and result["peak_rss_mb"] > 0 and result["f1"] > 0.3
