"""PyTorch eager against ONNX Runtime and OpenVINO on the same real crops, in one run: which runtime embeds fastest.

    python benchmarks/bench_runtimes.py                                   # both cases, 2 threads, 64 crops
    python benchmarks/bench_runtimes.py --checkpoint runs/demo/mgn_demo.pt  # MobileNetV2 case with trained weights

Each runtime runs through the embedding backend that ``FeatureExtractor`` and ``reidkit ingest`` use
(``EMBEDDING_BACKENDS``: torch = eager with channels_last, onnxruntime, openvino), on the same crops of the shared
CUHK03 benchmark's query split, preprocessed once per input size. Every runtime embeds all crops once, in batches,
after one warm-up batch (one run, as on a real ingest); the table gives images/s, the ratio to eager, the seconds
the runtime took to get ready (export / conversion, not timed in images/s) and the largest difference from eager's
features (raw, and after L2 normalisation as a store keeps them). Every runtime gets ``--threads`` threads; eager on
one thread is timed too (``torch-1-thread``), and "x best" is the ratio to the faster of the two eager rows. Cases: MGN-ResNet-50 at 384x128 with random weights (speed does not depend on them; its BN statistics are
calibrated on the crops so the features, and so the differences, are not degenerate), and MGN-MobileNetV2 at 256x128,
with ``--checkpoint``'s weights when given, else random and calibrated likewise. Results: benchmarks/out/runtimes.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reidkit.data import IMAGENET_MEAN, IMAGENET_STD, build_transforms, load_dataset, prepare_shared_cuhk03, read_image
from reidkit.inference.backends import EMBEDDING_BACKENDS
from reidkit.models import build_model
from reidkit.models.model_file import ModelCard, load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = Path(__file__).resolve().parent / "out"
RUNTIMES = ("torch", "torch-1-thread", "onnxruntime", "openvino")


@dataclass(frozen=True)
class Case:
    label: str
    backbone: str
    height: int
    width: int


CASES = (Case("MGN ResNet-50", "resnet50", 384, 128), Case("MGN MobileNetV2", "mobilenetv2", 256, 128))


def crop_paths(shared: Path, count: int) -> list[Path]:
    """The first ``count`` query crops of the shared CUHK03 benchmark (unpacked into <repo>/data once)."""
    root = prepare_shared_cuhk03(shared, REPO_ROOT / "data")
    return [record.path for record in load_dataset("market1501", root).query[:count]]


def preprocess(paths: list[Path], card: ModelCard) -> Tensor:
    transform = build_transforms(*card.input_size, train=False, mean=card.mean, std=card.std)
    return torch.stack([transform(read_image(path)) for path in paths])


def random_model(case: Case, calibration: Tensor) -> tuple[nn.Module, ModelCard, str]:
    """A randomly initialised MGN whose BN statistics come from the crops (as after training), seeded."""
    torch.manual_seed(0)
    model = build_model("mgn", 751, backbone=case.backbone)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(calibration)
    card = ModelCard(asdict(model.spec), (case.height, case.width), IMAGENET_MEAN, IMAGENET_STD, "scratch")
    return model.eval(), card, "random init, BN calibrated on the crops"


def time_runtime(
    name: str, model: nn.Module, card: ModelCard, images: Tensor, batch: int, threads: int
) -> dict[str, Any]:
    """``name`` a backend, or ``torch-1-thread``: eager on one thread, the reference a loaded machine needs (there
    PyTorch's two OpenMP threads wait on each other at every barrier while the other core runs someone else)."""
    backend = "torch" if name.startswith("torch") else name
    saved = torch.get_num_threads()
    torch.set_num_threads(1 if name == "torch-1-thread" else threads)
    try:
        start = time.perf_counter()
        run = EMBEDDING_BACKENDS.get(backend).make_runner(model, card, torch.device("cpu"), None)
        ready_s = time.perf_counter() - start
        batches = list(images.split(batch))
        with torch.inference_mode():
            run(batches[0])  # warm-up: first-call allocations and kernel choices
            start = time.perf_counter()
            features = torch.cat([run(b) for b in batches]).float().numpy()
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(saved)
    return {"runtime": name, "ready_s": ready_s, "seconds": seconds, "images_per_s": len(images) / seconds,
            "features": features}


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as the person-search store keeps them."""
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def run_case(case: Case, paths: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    if case.backbone == "mobilenetv2" and args.checkpoint is not None:
        model, card = load_model(args.checkpoint)
        weights = f"trained: {args.checkpoint}"
        if tuple(card.input_size) != (case.height, case.width):
            weights += f" (its own input {card.input_size[0]}x{card.input_size[1]})"
        images = preprocess(paths, card)
    else:
        card_size = ModelCard({}, (case.height, case.width), IMAGENET_MEAN, IMAGENET_STD, "scratch")
        images = preprocess(paths, card_size)
        model, card, weights = random_model(case, images[: min(32, len(images))])
    model.to(memory_format=torch.channels_last)  # as FeatureExtractor does for a checkpoint
    rows = [time_runtime(name, model, card, images, args.batch, args.threads) for name in args.runtimes]
    eager = next(r for r in rows if r["runtime"] == "torch")
    best_eager = max(r["images_per_s"] for r in rows if r["runtime"].startswith("torch"))
    for row in rows:
        row["ratio_vs_eager"] = row["images_per_s"] / eager["images_per_s"]
        row["ratio_vs_best_eager"] = row["images_per_s"] / best_eager
        row["max_abs_diff_vs_eager"] = float(np.abs(row["features"] - eager["features"]).max())
        row["max_abs_diff_l2_normalised"] = float(np.abs(unit(row["features"]) - unit(eager["features"])).max())
        row["max_abs_feature"] = float(np.abs(eager["features"]).max())
    return {**asdict(case), "input_size": list(card.input_size), "weights": weights,
            "results": [{k: v for k, v in row.items() if k != "features"} for row in rows]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO_ROOT.parent / "shared", help="the shared data folder")
    parser.add_argument("--images", type=int, default=64, help="crops embedded by every runtime")
    parser.add_argument("--batch", type=int, default=32, help="crops per forward pass")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every runtime")
    parser.add_argument("--checkpoint", type=Path, help="MGN-MobileNetV2 model file for the second case")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "runtimes.json")
    args = parser.parse_args()
    if "torch" not in args.runtimes:
        parser.error("--runtimes must include torch, the reference")
    torch.set_num_threads(args.threads)  # the onnxruntime backend follows torch's thread count
    paths = crop_paths(args.shared, args.images)
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, {len(paths)} CUHK03 query crops, "
          f"batch {args.batch}, one run after one warm-up batch")
    print(f"{'model':<18}{'input':>9}{'runtime':>15}{'img/s':>9}{'x eager':>9}{'x best':>8}{'ready s':>9}"
          f"{'max|diff|':>11}")
    cases = []
    for case in CASES:
        if args.only not in case.label:
            continue
        result = run_case(case, paths, args)
        cases.append(result)
        for row in result["results"]:
            size = "x".join(map(str, result["input_size"]))  # a --checkpoint keeps its own input size
            print(f"{case.label:<18}{size:>9}{row['runtime']:>15}{row['images_per_s']:>9.1f}"
                  f"{row['ratio_vs_eager']:>9.2f}{row['ratio_vs_best_eager']:>8.2f}{row['ready_s']:>9.1f}"
                  f"{row['max_abs_diff_vs_eager']:>11.2e}",
                  flush=True)
        print(f"  ({result['weights']}; largest |feature| {result['results'][0]['max_abs_feature']:.2f})")
    import onnxruntime
    import openvino

    report = {"threads": args.threads, "images": len(paths), "batch": args.batch, "torch": torch.__version__,
              "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__, "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
