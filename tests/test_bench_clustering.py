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
    bench_clustering.main(["--synthetic", "3000", "--dim", "32", "--cameras", "4", "--out", str(out)])
    aware = json.loads(out.read_text())["synthetic"]
    assert aware["params"]["camera_aware"] is True and aware["params"]["graph"] == "knn" and aware["f1"] > 0.3


def test_parameters_are_fitted_on_other_identities_with_whitening_and_neighbourhoods_swept(
    bench_clustering, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(bench_clustering, "_SWEEP", np.array([0.4, 0.6]))  # a shorter sweep, the same logic
    monkeypatch.setattr(bench_clustering, "_CAMERA_AWARE_SWEEP", ((3, 5), (2, 3)))
    features, pids = bench_clustering.synthetic(300, 16, 6, seed=2)
    cams = np.arange(300) % 2
    test = save_features(tmp_path / "test.npz", features, pids, cams)
    other, other_pids = bench_clustering.synthetic(300, 16, 6, seed=3)
    fit = save_features(tmp_path / "fit.npz", other, other_pids, cams)
    report = bench_clustering.main(["--features", str(test), "--fit-eps-on", str(fit), "--out", str(tmp_path / "o.json")])
    fitted = report["fitted"]["agglomerative-jaccard camera_norm=False"]
    assert {row["whiten"] for row in fitted["sweep"]} == set(bench_clustering._WHITEN_SWEEP)
    assert {row["k1"] for row in fitted["sweep"] if not row["camera_aware"]} == set(bench_clustering._K1_SWEEP)
    assert {(row["k_intra"], row["k_inter"]) for row in fitted["sweep"] if row["camera_aware"]} == {(3, 5), (2, 3)}
    assert {row["k2"] for row in fitted["sweep"]} == set(bench_clustering._K2_SWEEP)
    assert len(fitted["sweep"]) == 3 * (3 + 2) * len(bench_clustering._K2_SWEEP) * 2
    best = max(fitted["sweep"], key=lambda row: row["f1"])
    assert all(fitted[key] == best[key] for key in best if key != "f1")
    rows = {row["setting"]: row for row in report["rows"]}
    name = next(n for n in rows if n.startswith(f"agglomerative-jaccard linkage_cut={best['linkage_cut']} ")
                and n.endswith("(fitted)"))
    assert ("camera-aware k_intra=" in name) == best["camera_aware"]
    # The fitted row ran with what was fitted: the clustering's own params say so.
    assert rows[name]["params"]["camera_aware"] == best["camera_aware"]
    assert rows[name]["params"]["linkage_cut"] == best["linkage_cut"]


def test_the_held_out_split_is_the_identities_a_smaller_run_never_saw(cuhk03_dataset) -> None:
    from reidkit.data.subset import held_out_identities, subset_identities

    seen = subset_identities(cuhk03_dataset, 5, None).train
    held_out = held_out_identities(cuhk03_dataset.train, 5)
    assert len(seen) + len(held_out) == len(cuhk03_dataset.train)
    assert {r.pid for r in seen}.isdisjoint({r.pid for r in held_out}) and len({r.pid for r in seen}) == 5
    assert {r.camid for r in held_out} == {r.camid for r in cuhk03_dataset.train}
