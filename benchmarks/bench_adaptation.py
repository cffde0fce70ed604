"""Unsupervised domain adaptation on the shared benchmark: camera pair 1 (labelled) -> camera pair 2 (unlabelled).

    python benchmarks/bench_adaptation.py                     # the full benchmark (recipe uda_cuhk03_pair1_to_pair2)
    python benchmarks/bench_adaptation.py --quick             # a minute's check of the pipeline, meaningless numbers

Three models, all BNNeck-MobileNetV2 from ImageNet at 128x64 with the same recipe, tested on pair 2's test split
(215 identities, 430 queries, 1,687 gallery crops; single query, no flip; with and without re-ranking):

- ``source-only``: pair 1's 4,229 labelled crops, 6 epochs (25,344 images seen);
- ``oracle``: pair 2's 2,220 crops WITH their labels, 12 epochs (about the same number of images);
- ``adapted``: the source-only model, then ``--rounds`` rounds of clustering pair 2's train crops (labels never
  read) and ``--epochs-per-round`` epochs on the clusters.

Reported: Rank-1 / mAP of each, and the share of the source-only -> oracle gap the adapted model closes. Nothing is
chosen on the test identities: the rounds are fixed in advance and the last round's model is the result. Each
run lives under ``--work-dir`` and is reused (or resumed) when the script is run again.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import machine_summary

from reidkit.clustering import ClusterOptions
from reidkit.config import ExperimentConfig, apply_overrides, load_config
from reidkit.data import ReidDataset, load_dataset, prepare_shared_cuhk03
from reidkit.evaluation import score_features
from reidkit.inference import FeatureExtractor
from reidkit.inference.dataset_eval import RERANK_K1, RERANK_K2, RERANK_LAMBDA
from reidkit.models.model_file import load_checkpoint
from reidkit.training.adaptation import AdaptOptions, TargetCrops, adapt
from reidkit.training.hooks import LAST
from reidkit.data.subset import subset_identities
from reidkit.training.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parents[1]
RECIPE = "uda_cuhk03_pair1_to_pair2"
TARGET = "data.dataset_options={train_pairs: [2], test_pairs: [2]}"
ORACLE = [TARGET, "optim.cosine_epochs=12", "train.epochs=12", "train.eval_every=12"]
QUICK = ["data.max_train_ids=40", "data.max_test_ids=30", "train.epochs=1", "optim.cosine_epochs=1",
         "train.eval_every=1", "data.ids_per_batch=8"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--epochs-per-round", type=int, default=4)
    parser.add_argument("--method", default="dbscan-jaccard")
    parser.add_argument("--no-camera-norm", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny subsets and one epoch: checks the pipeline only")
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "data")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "runs" / "uda")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "adaptation.json")
    return parser.parse_args()


def trained(config: ExperimentConfig, name: str) -> Path:
    """Train ``config`` unless its run already finished (resume it if it stopped part-way); return its model."""
    last = Path(config.train.output_dir) / LAST
    if last.is_file() and len(load_checkpoint(last).get("history", [])) >= config.train.epochs:
        return last
    print(f"training {name} ...")
    Trainer(config, echo=lambda line: print(f"  {line}")).fit(resume=last.is_file())
    return last


def scores(checkpoint: Path, test: ReidDataset) -> dict[str, Any]:
    """Rank-1 / mAP with and without re-ranking, from one extraction of the test crops."""
    extractor = FeatureExtractor(checkpoint, batch_size=128, progress=False, backend="openvino")
    qf = extractor([r.path for r in test.query], desc="query features")
    gf = extractor([r.path for r in test.gallery], desc="gallery features")
    labels = ([r.pid for r in test.query], [r.camid for r in test.query], [r.pid for r in test.gallery],
              [r.camid for r in test.gallery])

    def score(rerank: bool) -> dict[str, Any]:
        return score_features(qf, labels[0], labels[1], gf, labels[2], labels[3], rerank=rerank, k1=RERANK_K1,
                              k2=RERANK_K2, lambda_value=RERANK_LAMBDA).result

    plain, reranked = score(False), score(True)
    return {"rank1": plain["rank1"], "mAP": plain["mAP"], "rank1_rerank": reranked["rank1"],
            "mAP_rerank": reranked["mAP"], "backbone_init": extractor.card.backbone_init}


def main() -> None:
    args = parse_args()
    root = prepare_shared_cuhk03(args.shared, args.data_dir)
    quick = QUICK if args.quick else []
    common = [f"data.root={root}", "train.progress=false", "train.tensorboard=false"]
    work = args.work_dir / ("quick" if args.quick else "")
    source_cfg = load_config(RECIPE, [*common, f"train.output_dir={work / 'source_only'}", *quick])
    oracle_cfg = load_config(RECIPE, [*common, *ORACLE, f"train.output_dir={work / 'oracle'}", *quick])
    source = trained(source_cfg, "source-only (pair 1, labelled)")
    oracle = trained(oracle_cfg, "oracle (pair 2, labelled)")

    target_cfg = apply_overrides(source_cfg, [TARGET])
    target = load_dataset("cuhk03_shared", root, train_pairs=[2], test_pairs=[2])
    target = subset_identities(target, target_cfg.data.max_train_ids, target_cfg.data.max_test_ids)
    options = AdaptOptions(
        1 if args.quick else args.rounds,
        1 if args.quick else args.epochs_per_round,
        ClusterOptions(method=args.method, camera_norm=not args.no_camera_norm),
    )
    print("adapting the source-only model to pair 2's unlabelled train crops ...")
    adapted = adapt(
        replace(target_cfg, train=replace(target_cfg.train, output_dir=str(work / "adapt"))),
        source, TargetCrops.from_records(target.train), work / "adapt", work / "adapted.pt", options,
        echo=lambda line: print(f"  {line}"),
    )
    rows: dict[str, dict[str, Any]] = {
        "source-only": scores(source, target), "adapted": scores(adapted.model_file, target),
        "oracle": scores(oracle, target),
    }
    gap = {
        key: (rows["adapted"][key] - rows["source-only"][key]) / (rows["oracle"][key] - rows["source-only"][key])
        if rows["oracle"][key] != rows["source-only"][key] else float("nan")
        for key in ("rank1", "mAP", "rank1_rerank", "mAP_rerank")
    }
    print(f"\npair 2 test ({len(target.query)} queries, {len(target.gallery)} gallery), single query, no flip")
    print(f"{'model':<12} {'Rank-1':>8} {'mAP':>8} {'R1 rerank':>10} {'mAP rerank':>11}")
    for name, row in rows.items():
        print(f"{name:<12} {row['rank1']:>8.2%} {row['mAP']:>8.2%} {row['rank1_rerank']:>10.2%} "
              f"{row['mAP_rerank']:>11.2%}")
    print(f"{'gap closed':<12} {gap['rank1']:>8.0%} {gap['mAP']:>8.0%} {gap['rank1_rerank']:>10.0%} "
          f"{gap['mAP_rerank']:>11.0%}")
    report = {
        "quick": args.quick, "rows": rows, "gap_closed": gap,
        "rounds": [{k: v for k, v in vars(r).items()} for r in adapted.rounds],
        "options": {"rounds": options.rounds, "epochs_per_round": options.epochs_per_round,
                    "method": args.method, "camera_norm": not args.no_camera_norm},
        "machine": machine_summary(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
