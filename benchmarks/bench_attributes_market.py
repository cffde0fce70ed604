"""Attribute recognition and search by description on the Market-1501 test split, from the shared data:

    python benchmarks/bench_attributes_market.py --shared ../shared [--checkpoint MODEL]

1. Recognition by the labels' authors' protocol (Lin et al. 2019): every gallery image of the 750 test identities
   (13,115; distractors and junk excluded) takes its identity's labels; accuracy per group (12), their mean, plus
   label-based mA and instance-based F1 (reidkit.evaluation.attributes).
2. Search by description: ``--descriptions`` (200) descriptions drawn with a fixed seed, each from a random test
   identity's labels, ``--terms`` (3) groups each (a colour group's ``other``, "no named colour", is never drawn:
   nobody describes a person so); the same 13,115 images ranked by the description's joint probability; precision
   at 10 and average precision against every image whose identity's labels match the whole description.
3. The same through a store: the 13,115 images written into a store as crops, one track per image (one "video"
   per Market camera; the crop files themselves are not copied), then every description searched with
   ``search.describe.search_by_description`` and, for the first ``--cli-checks``, with ``reidkit search --attr
   --json`` too (their hits must be the library's); precision@10 from the store's answers.
4. A photo with a description (``photo_and_description``): filter against re-scoring.

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
    parser.add_argument("--cli-checks", type=int, default=5, help="descriptions also searched with reidkit search")
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
    through_store = store_search(
        gallery, gallery_features[labelled], gallery_probabilities[labelled], labels, extractor, args
    )
    combined = photo_and_description(
        dataset, labels, extractor([r.path for r in dataset.query], desc="query"), gallery_features, gallery_probabilities, args
    )
    record = {
        "model": str(args.checkpoint or DEFAULT_MODEL), "model_id": extractor.model_id, "flip": args.flip,
        "input_size": list(extractor.card.input_size), "images": len(gallery),
        "extract_seconds": round(seconds, 1), "recognition": recognition, "description_search": search,
        "through_store": through_store, "photo_and_description": combined,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


def description_search(labels: Any, pids: list[int], probabilities: np.ndarray, args: Any) -> dict[str, Any]:
    """Precision@10 and mAP of ranking the images by the joint probability of random descriptions."""
    from reidkit.attribute_schema import description_log_probability

    identities = sorted(set(pids))
    image_pids = np.asarray(pids)
    precisions, average_precisions, matches = [], [], []
    for description in random_descriptions(labels, identities, args):
        matching = {pid for pid in identities if all(labels.values(pid)[k] == v for k, v in description.items())}
        relevant = np.isin(image_pids, list(matching))
        order = np.argsort(-description_log_probability(labels.schema, probabilities, description), kind="stable")
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


def random_descriptions(labels: Any, identities: list[int], args: Any) -> list[dict[str, str]]:
    """``--descriptions`` descriptions of ``--terms`` groups each, from random identities' labels (seed ``--seed``)."""
    rng = np.random.default_rng(args.seed)
    found = []
    for _ in range(args.descriptions):
        chosen = labels.values(int(rng.choice(identities)))
        describable = [name for name, value in chosen.items() if value != "other"]
        names = rng.choice(describable, size=args.terms, replace=False)
        found.append({str(name): chosen[str(name)] for name in names})
    return found


def store_search(
    gallery: list[Any], features: np.ndarray, probabilities: np.ndarray, labels: Any, extractor: Any, args: Any
) -> dict[str, Any]:
    """Section 3 of the module docstring: the images as one-crop tracks of a store, searched by description."""
    import shutil
    import subprocess
    import sys
    import tempfile
    from datetime import datetime

    from reidkit.search.describe import search_by_description
    from reidkit.store.reader import StoreReader
    from reidkit.store.rows import NewDetection, normalise_rows
    from reidkit.store.writer import Store

    folder = Path(tempfile.mkdtemp(prefix="attributes-store-"))
    pid_of_track: dict[int, int] = {}
    vectors = normalise_rows(features)
    with Store.open(folder / "store", writable=True, create=True) as store:
        store.require_model(extractor.model_id, extractor.feature_dim, "market1501_mgn_mobilenetv2")
        store.require_attributes(labels.schema.name)
        for camera in sorted({r.camid for r in gallery}):
            rows = [i for i, r in enumerate(gallery) if r.camid == camera]
            video = store.add_video(f"c{camera + 1}", f"market-c{camera + 1}", f"c{camera + 1}", 0, len(rows), 1,
                                    "crops", datetime(2015, 1, 1, 9, 0), 1.0, 64, 128)
            detections = [NewDetection(n, n, float(n), (0.0, 0.0, 64.0, 128.0), 1.0, 1.0, gallery[i].path.name,
                                       vectors[i], probabilities[i]) for n, i in enumerate(rows)]
            track_rows: dict[int, int] = {}
            store.commit_chunk(video.id, detections, len(rows) - 1, track_rows)
            store.finish_video(video.id)
            pid_of_track.update({track_rows[n]: gallery[i].pid for n, i in enumerate(rows)})
        store.save_indexes()
    identities = sorted({r.pid for r in gallery})
    descriptions = random_descriptions(labels, identities, args)
    precisions, agree = [], 0
    with StoreReader.open(folder / "store") as reader:
        for number, description in enumerate(descriptions):
            hits = search_by_description(reader, description, top_k=10).hits
            matching = {p for p in identities if all(labels.values(p)[k] == v for k, v in description.items())}
            precisions.append(np.mean([pid_of_track[hit.track.id] in matching for hit in hits]))
            if number < args.cli_checks:
                terms = [arg for name, value in description.items() for arg in ("--attr", f"{name}={value}")]
                done = subprocess.run([str(Path(sys.executable).with_name("reidkit")), "search", "--db",
                                       str(folder / "store"), *terms, "--top-k", "10", "--json"],
                                      capture_output=True, text=True, check=True)
                agree += [h["track_id"] for h in json.loads(done.stdout)["hits"]] == [h.track.id for h in hits]
    shutil.rmtree(folder)
    return {"tracks": len(pid_of_track), "descriptions": len(descriptions), "precision_at_10": float(np.mean(precisions)),
            "cli_checks": args.cli_checks, "cli_agrees": agree}


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
