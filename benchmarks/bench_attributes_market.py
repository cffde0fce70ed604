"""Attribute recognition and search by description on the Market-1501 test split, from the shared data:

    python benchmarks/bench_attributes_market.py --shared ../shared [--checkpoint MODEL]

1. Recognition by the labels' authors' protocol (Lin et al. 2019): every gallery image of the 750 test identities
   (13,115; distractors and junk excluded) takes its identity's labels; accuracy per group (12), their mean, plus
   label-based mA and instance-based F1 (reidkit.evaluation.attributes).
2. Search by description: ``--descriptions`` (200) descriptions drawn with a fixed seed, each from a random test
   identity's labels, ``--terms`` (3) groups each (a colour group's ``other``, "no named colour", is never drawn:
   nobody describes a person so); the same 13,115 images ranked by the description's joint probability; precision
   at 10 and average precision against every image whose identity's labels match the whole description.

The model is the shipped default unless ``--checkpoint`` names another with an attribute head. Results: printed as
JSON and written to benchmarks/out/attributes_market.json; RESULTS.md quotes them with machine and load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--checkpoint", default=None, help="a model with an attribute head (default: shipped)")
    parser.add_argument("--descriptions", type=int, default=200)
    parser.add_argument("--terms", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "attributes_market.json")
    args = parser.parse_args()

    from reidkit.data import load_dataset, prepare_shared_market1501, prepare_shared_market1501_attributes
    from reidkit.data.market_attributes import read_market1501_attributes
    from reidkit.inference import FeatureExtractor
    from reidkit.inference.dataset_eval import score_gallery_attributes
    from reidkit.models.zoo import DEFAULT_MODEL

    dataset = load_dataset("market1501", prepare_shared_market1501(args.shared, args.data_dir))
    labels = read_market1501_attributes(prepare_shared_market1501_attributes(args.shared, args.data_dir), "test")
    extractor = FeatureExtractor(args.checkpoint or DEFAULT_MODEL, flip=args.flip, attributes=True, backend="openvino")
    started = time.perf_counter()
    gallery_features, gallery_probabilities = extractor.extract([r.path for r in dataset.gallery], desc="gallery")
    seconds = time.perf_counter() - started
    assert gallery_probabilities is not None
    labelled = [i for i, r in enumerate(dataset.gallery) if r.pid in labels.by_pid]
    gallery = [dataset.gallery[i] for i in labelled]
    recognition = score_gallery_attributes(gallery, gallery_probabilities[labelled], labels)
    search = description_search(labels, [r.pid for r in gallery], gallery_probabilities[labelled], args)
    combined = photo_and_description(
        dataset, labels, extractor([r.path for r in dataset.query], desc="query"), gallery_features, gallery_probabilities, args
    )
    record = {
        "model": str(args.checkpoint or DEFAULT_MODEL), "model_id": extractor.model_id, "flip": args.flip,
        "input_size": list(extractor.card.input_size), "images": len(gallery),
        "extract_seconds": round(seconds, 1), "recognition": recognition, "description_search": search,
        "photo_and_description": combined,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


def description_search(labels: Any, pids: list[int], probabilities: np.ndarray, args: Any) -> dict[str, Any]:
    """Precision@10 and mAP of ranking the images by the joint probability of random descriptions."""
    from reidkit.attribute_schema import description_log_probability

    schema = labels.schema
    rng = np.random.default_rng(args.seed)
    identities = sorted(set(pids))
    image_pids = np.asarray(pids)
    precisions, average_precisions, matches = [], [], []
    for _ in range(args.descriptions):
        chosen = labels.values(int(rng.choice(identities)))
        describable = [name for name, value in chosen.items() if value != "other"]
        names = rng.choice(describable, size=args.terms, replace=False)
        description = {str(name): chosen[str(name)] for name in names}
        matching = {pid for pid in identities if all(labels.values(pid)[k] == v for k, v in description.items())}
        relevant = np.isin(image_pids, list(matching))
        order = np.argsort(-description_log_probability(schema, probabilities, description), kind="stable")
        hits = relevant[order]
        precisions.append(float(hits[:10].mean()))
        ranks = np.flatnonzero(hits) + 1
        average_precisions.append(float((np.arange(1, len(ranks) + 1) / ranks).mean()))
        matches.append(int(relevant.sum()))
    return {
        "descriptions": args.descriptions, "terms": args.terms, "seed": args.seed,
        "precision_at_10": float(np.mean(precisions)), "mAP": float(np.mean(average_precisions)),
        "matching_images_median": float(np.median(matches)),
        "matching_images_fraction": float(np.mean(matches) / len(pids)),
    }


def photo_and_description(
    dataset: Any, labels: Any, query_features: np.ndarray, gallery_features: np.ndarray,
    gallery_probabilities: np.ndarray, args: Any,
) -> dict[str, Any]:
    """A photo with a description of the same person (``--terms`` groups of the query identity's labels), scored as
    the store scores a photo search (cosine similarity of L2-normalised features): the Market-1501 protocol's
    Rank-1 / mAP for the photo alone, for the description as a filter (gallery images whose joint probability is
    below ``threshold`` go to the end of the list) and as a re-scoring (cosine + ``weight`` x log joint
    probability)."""
    from reidkit.attribute_schema import description_log_probability
    from reidkit.evaluation import evaluate

    rng = np.random.default_rng(args.seed + 1)
    query = query_features / np.linalg.norm(query_features, axis=1, keepdims=True)
    gallery = gallery_features / np.linalg.norm(gallery_features, axis=1, keepdims=True)
    similarity = (query @ gallery.T).astype(np.float64)
    log_probability = np.empty_like(similarity)
    for row, record in enumerate(dataset.query):
        values = labels.values(record.pid)
        describable = [name for name, value in values.items() if value != "other"]
        names = rng.choice(describable, size=args.terms, replace=False)
        description = {str(n): values[str(n)] for n in names}
        log_probability[row] = description_log_probability(labels.schema, gallery_probabilities, description)
    q_pids, q_cams = [r.pid for r in dataset.query], [r.camid for r in dataset.query]
    g_pids, g_cams = [r.pid for r in dataset.gallery], [r.camid for r in dataset.gallery]

    def scored(score: np.ndarray) -> dict[str, float]:
        result = evaluate(-score, q_pids, g_pids, q_cams, g_cams)
        return {"rank1": round(float(result["rank1"]), 4), "mAP": round(float(result["mAP"]), 4)}

    rows: dict[str, Any] = {"photo": scored(similarity)}
    for threshold in (0.01, 0.05, 0.1, 0.2):
        rows[f"filter {threshold}"] = scored(np.where(log_probability < np.log(threshold), similarity - 3.0,
                                                      similarity))
    for weight in (0.005, 0.01, 0.02, 0.05, 0.1):
        rows[f"rescore {weight}"] = scored(similarity + weight * log_probability)
    return {"queries": len(q_pids), "terms": args.terms, "seed": args.seed + 1, "rows": rows}


if __name__ == "__main__":
    main()
