"""Who is who on the shared CUHK03 benchmark: clustering the 6,740 test crops (query + gallery, 700 identities, two
cameras) with HDBSCAN, with DBSCAN and with average linkage over k-reciprocal Jaccard distances, with and without
per-camera normalisation, in one run; and the k-NN graph path on synthetic features at scale.

The reference in the same run is HDBSCAN on the same L2-normalised features (the issue's baseline, F1 0.55 with an
off-the-shelf model); DBSCAN-Jaccard is also run at the literature's k1 20 / eps 0.6 and at a derived eps beside
the defaults, and ``--fit-eps-on HELD_OUT.npz`` adds each Jaccard method at the radius, neighbourhood (k1, or
camera-aware k_intra / k_inter) and whitening best on other identities (held-out or training split). Nothing here
is tuned on these identities: ``--split train`` and ``--split held-out`` run the same table on identities that are
not reported, which is where any rule was looked at. Cannot-link (two people in one frame) does not apply: these
crops carry no frames.

    python benchmarks/bench_clustering.py --checkpoint runs/demo/mgn_demo.pt [--flip] [--split test|train]
    python benchmarks/bench_clustering.py --checkpoint runs/val/best.pt --split held-out   # ids its run never saw
    python benchmarks/bench_clustering.py --checkpoint CKPT --fit-eps-on HELD_OUT.npz  # fit radius, sets, whitening
    python benchmarks/bench_clustering.py --features test_features.npz      # a reidkit features file
    python benchmarks/bench_clustering.py --synthetic 100000 [--dim 128] [--method M] [--cameras 8]  # k-NN, at scale

Prints a table and writes benchmarks/out/clustering.json (or clustering_synthetic.json).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import itertools
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from reidkit.clustering import (  # noqa: E402
    HELD_OUT_FIT,
    ClusterOptions,
    camera_normalise,
    cluster_features,
    score_clusters,
)
from reidkit.clustering.cluster import pca_whiten  # noqa: E402
from reidkit.clustering.constraints import build_nodes, normalise_rows  # noqa: E402
from reidkit.clustering.methods import average_linkage_on_graph, dbscan_on_graph, jaccard_neighbours  # noqa: E402
from reidkit.clustering.types import TRAIN_SPLIT_EPS, TRAIN_SPLIT_LINKAGE_CUT  # noqa: E402
from reidkit.evaluation import FeatureSet, load_features, save_features  # noqa: E402

OUT = REPO / "benchmarks" / "out"


@dataclass(frozen=True)
class Setting:
    name: str
    options: ClusterOptions


def settings(camera_norm_too: bool = True) -> list[Setting]:
    """The compared settings: the HDBSCAN reference; DBSCAN-Jaccard at the literature's k1 20 / eps 0.6, at a radius
    derived from the features, and at the default; average linkage at the default and at the setting fitted on
    held-out identities (``HELD_OUT_FIT``); each +/- camera norm."""
    base = [
        Setting("hdbscan", ClusterOptions(method="hdbscan")),
        Setting("dbscan-jaccard k1=20 eps=0.6", ClusterOptions(method="dbscan-jaccard", k1=20, eps=0.6)),
        Setting("dbscan-jaccard eps=derived", ClusterOptions(method="dbscan-jaccard", eps=None)),
        Setting(f"dbscan-jaccard eps={TRAIN_SPLIT_EPS}", ClusterOptions(method="dbscan-jaccard")),
        Setting(f"agglomerative-jaccard cut={TRAIN_SPLIT_LINKAGE_CUT}", ClusterOptions(method="agglomerative-jaccard")),
        Setting("agglomerative-jaccard camera-aware (HELD_OUT_FIT)", HELD_OUT_FIT),
    ]
    if not camera_norm_too:
        return base
    return [s for b in base for s in (b, Setting(b.name + " +camnorm", replace(b.options, camera_norm=True)))]


# What is fitted on identities that are not reported: each Jaccard method's radius, swept with whitening off and
# at these component counts, and at these neighbourhoods: each item's k1 nearest, or camera-aware (its k_intra
# nearest of its own camera and k_inter of the others), each with these query-expansion sizes k2.
_FITTED = {"dbscan-jaccard": "eps", "agglomerative-jaccard": "linkage_cut"}
_SWEEP = np.round(np.arange(0.30, 0.91, 0.05), 2)
_WHITEN_SWEEP = (0, 256, 512)
_K1_SWEEP = (10, 15, 20)
_CAMERA_AWARE_SWEEP = tuple(itertools.product((2, 3, 5), (3, 5, 7, 10)))
_K2_SWEEP = (3, 6)
_ON_GRAPH = {"dbscan-jaccard": dbscan_on_graph, "agglomerative-jaccard": average_linkage_on_graph}


def neighbourhoods() -> list[dict[str, object]]:
    """The swept neighbourhoods (the k-reciprocal sets and the query expansion's k2), as ClusterOptions fields."""
    sets: list[dict[str, object]] = [{"camera_aware": False, "k1": k1} for k1 in _K1_SWEEP]
    sets += [{"camera_aware": True, "k_intra": a, "k_inter": b} for a, b in _CAMERA_AWARE_SWEEP]
    return [{**found, "k2": k2} for found in sets for k2 in _K2_SWEEP]


def fitted_on(train: FeatureSet, method: str, camera_norm: bool) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The radius (DBSCAN's eps, average linkage's cut), whitening and neighbourhood with the best pairwise F1 on
    identities that are not reported (a supervised choice, allowed because the reported identities are others).

    The features are normalised and whitened once per setting of whitening, as ``cluster_features`` would; the
    Jaccard graph is built once per neighbourhood and clustered at every radius."""
    unit = normalise_rows(train.features)
    if camera_norm:
        unit, _ = camera_normalise(unit, train.camids.tolist())
    sweep = []
    for whiten in _WHITEN_SWEEP:
        prepared = pca_whiten(unit, whiten)[0] if whiten else unit
        nodes = build_nodes(prepared, None, None, train.camids.tolist())
        for neighbourhood in neighbourhoods():
            options = replace(ClusterOptions(method=method), **neighbourhood)
            graph = jaccard_neighbours(nodes, options)
            for value in _SWEEP:
                found = _ON_GRAPH[method](graph, nodes, replace(options, **{_FITTED[method]: float(value)}))
                chosen = {**neighbourhood, "whiten": whiten, _FITTED[method]: float(value)}
                sweep.append({**chosen, "f1": score_clusters(found.labels, train.pids).f1})
    best = max(sweep, key=lambda row: row["f1"])
    return {k: v for k, v in best.items() if k != "f1"}, sweep


def _describe(best: dict[str, object]) -> str:
    if best["camera_aware"]:
        return f"camera-aware k_intra={best['k_intra']} k_inter={best['k_inter']} k2={best['k2']}"
    return f"k1={best['k1']} k2={best['k2']}"


def test_features(args: argparse.Namespace) -> tuple[FeatureSet, str]:
    """The split's features: from ``--features``, or extracted once with ``--checkpoint`` and cached in out/."""
    if args.features:
        return load_features(args.features), f"features file {args.features}"
    from reidkit.data import load_dataset, prepare_shared_cuhk03
    from reidkit.data.subset import held_out_identities

    root = prepare_shared_cuhk03(Path(args.shared), Path(args.data_dir))
    dataset = load_dataset("market1501", root)
    if args.split == "held-out":
        records = held_out_identities(dataset.train, _seen_train_ids(args.checkpoint))
    else:
        records = dataset.train if args.split == "train" else [*dataset.query, *dataset.gallery]
    # The run folder names the model (two runs both write best.pt).
    path = Path(args.checkpoint)
    tag = f"{path.parent.name}_{path.stem}" if args.checkpoint != "imagenet" else "imagenet"
    cache = OUT / f"clustering_features_{tag}_{args.split}{'_flip' if args.flip else ''}.npz"
    if cache.is_file() and not args.no_cache:
        return load_features(cache), f"{args.checkpoint} (cached {cache.name})"
    extractor = _extractor(args.checkpoint, args.flip)
    features = extractor([r.path for r in records], desc=f"{args.split} features")
    save_features(cache, features, [r.pid for r in records], [r.camid for r in records], [r.path for r in records])
    return load_features(cache), args.checkpoint


def _seen_train_ids(checkpoint: str) -> int:
    """How many training identities (the first N in pid order) the model file's run trained on."""
    from reidkit.models.model_file import load_checkpoint

    seen = load_checkpoint(checkpoint).get("config", {}).get("data", {}).get("max_train_ids")
    if seen is None:
        raise SystemExit(f"{checkpoint}: its run trained on every training identity, so none is held out; train "
                         "one with data.max_train_ids=N for --split held-out")
    return int(seen)


def _extractor(checkpoint: str, flip: bool):  # type: ignore[no-untyped-def]
    from reidkit.inference import FeatureExtractor
    from reidkit.inference.model_choice import choose_model

    if checkpoint == "imagenet":
        extractor = choose_model("imagenet", None).extractor
        extractor.flip = flip
        return extractor
    backend = "openvino" if importlib.util.find_spec("openvino") else "torch"  # equal features to 1e-4, faster on CPU
    return FeatureExtractor(checkpoint, flip=flip, progress=True, backend=backend)


def rank1(features: FeatureSet) -> float | None:
    """The features' Rank-1 on the benchmark's own query / gallery split (Market-1501 protocol), when the file
    names say which crop is a query; it places the model among the issue's reference figures."""
    from reidkit.evaluation import compute_distance_matrix, evaluate

    if features.paths is None:
        return None
    query = np.array(["/query/" in path for path in features.paths])
    if not query.any() or query.all():
        return None
    qf, gf = features.features[query], features.features[~query]
    result = evaluate(compute_distance_matrix(qf, gf), features.pids[query], features.pids[~query],
                      features.camids[query], features.camids[~query])
    return float(result["rank1"])


def run_settings(features: FeatureSet, chosen: list[Setting]) -> list[dict[str, object]]:
    rows = []
    for setting in chosen:
        start, cpu = time.perf_counter(), time.process_time()
        result = cluster_features(features.features, setting.options, cameras=features.camids.tolist())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        scores = score_clusters(result.labels, features.pids, features.camids)
        row = {"setting": setting.name, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), **scores.as_dict(),
               "params": result.params}
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, object]], identities: int) -> None:
    print(f"{'setting':<60} {'P':>5} {'R':>5} {'F1':>5} {'NMI':>5} {'ARI':>5} {'clusters':>8} {'noise':>5} "
          f"{'xcam':>5} {'s':>6} {'cpu s':>6}  (identities: {identities})")
    for r in rows:
        print(f"{r['setting']:<60} {r['precision']:5.3f} {r['recall']:5.3f} {r['f1']:5.3f} {r['nmi']:5.3f} "
              f"{r['ari']:5.3f} {r['num_clusters']:8d} {r['unclustered']:5.2f} {r['cross_camera']:5.3f} "
              f"{r['seconds']:6.1f} {r['cpu_seconds']:6.1f}")


def synthetic(num: int, dim: int, per_identity: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs on the unit sphere: ``num / per_identity`` centres, each item centre + noise."""
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, max(1, num // per_identity), size=num)
    centres = rng.standard_normal((int(pids.max()) + 1, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((num, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
    return centres[pids] + noise, pids


def run_synthetic(args: argparse.Namespace) -> dict[str, object]:
    features, pids = synthetic(args.synthetic, args.dim, 10, args.seed)
    # Cameras drawn at random per item: the camera-aware sets' extra searches, not their gain, are measured here.
    cameras = np.random.default_rng(args.seed).integers(0, args.cameras, size=len(pids)) if args.cameras else None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    options = ClusterOptions(method=args.method, graph="knn", eps=None,  # DBSCAN as recorded: eps derived
                             camera_aware=cameras is not None)
    result = cluster_features(features, options, cameras=None if cameras is None else cameras.tolist())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scores = score_clusters(result.labels, pids)
    report = {"items": args.synthetic, "dim": args.dim, "identities": int(np.unique(pids).size),
              "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "load_average": os.getloadavg(),
              "peak_rss_mb": round(peak_mb), "rss_before_mb": round(before / 1024),
              "dense_would_need_mb": round(2 * args.synthetic**2 * 4 / 2**20), **scores.as_dict(),
              "params": result.params}
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a reidkit model file, or 'imagenet' (MGN-MobileNetV2, ImageNet init)")
    source.add_argument("--features", help="a reidkit .npz features file (features, pids, camids)")
    source.add_argument("--synthetic", type=int, help="cluster this many synthetic features with the k-NN graph")
    parser.add_argument("--split", choices=("test", "train", "held-out"), default="test",
                        help="held-out: the training identities the --checkpoint's run left out "
                        "(data.max_train_ids), for fitting parameters on a model that never saw them")
    parser.add_argument("--flip", action="store_true", help="average each feature with its mirrored crop's")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--method", default="dbscan-jaccard", help="the method of the --synthetic run")
    parser.add_argument("--cameras", type=int, default=0,
                        help="--synthetic: spread the items over this many cameras and cluster camera-aware")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knn", action="store_true", help="also run the default setting through the k-NN graph")
    parser.add_argument("--fit-eps-on", type=Path, help="features file of identities not reported (training or "
                        "held-out split): also run with the radius, neighbourhood and whitening best on them")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"))
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if args.synthetic:
        report = {"date": stamp, "synthetic": run_synthetic(args)}
        out = args.out or OUT / "clustering_synthetic.json"
    else:
        features, model = test_features(args)
        chosen = settings()
        if args.knn:
            chosen.append(Setting("agglomerative-jaccard knn-graph", ClusterOptions(graph="knn")))
        fitted = {}
        if args.fit_eps_on:
            train = load_features(args.fit_eps_on)
            for method, key in _FITTED.items():
                for camera_norm in (False, True):
                    best, sweep = fitted_on(train, method, camera_norm)
                    fitted[f"{method} camera_norm={camera_norm}"] = {**best, "sweep": sweep}
                    name = (f"{method} {key}={best[key]} {_describe(best)} whiten={best['whiten']} (fitted)"
                            f"{' +camnorm' if camera_norm else ''}")
                    options = replace(ClusterOptions(method=method, camera_norm=camera_norm), **best)
                    chosen.append(Setting(name, options))
        rows = run_settings(features, chosen)
        identities = int(np.unique(features.pids).size)
        top1 = rank1(features)
        print(f"{len(features)} crops, {identities} identities, split {args.split}, model {model}, flip {args.flip}, "
              f"Rank-1 {'n/a' if top1 is None else f'{top1:.3f}'} (query vs gallery, no re-ranking)")
        print_table(rows, identities)
        report = {"date": stamp, "split": args.split, "model": model, "flip": args.flip, "rank1": top1,
                  "items": len(features),
                  "identities": identities, "rows": rows,
                  "fitted_on": str(args.fit_eps_on) if args.fit_eps_on else None, "fitted": fitted}
        out = args.out or OUT / f"clustering_{args.split}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
